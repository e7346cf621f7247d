"""`rag ui` in a real browser: Debian's headless Chromium driven by Playwright, the real embedder
and the bundled LLM behind a vLLM server that `rag ui` starts itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import upload
from tests.helpers import PAPERS, link_models, needs_shared, stop_group, wait_up

pytestmark = [pytest.mark.integration, needs_shared(PAPERS)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
QUESTION = "How many identical layers does the Transformer encoder have?"


@pytest.fixture
def app(rag_home: Path, models_dir: Path, minilm, tmp_path: Path) -> Iterator[str]:  # noqa: ANN001
    """A small KB of two papers and `rag ui` serving it; yields the app's URL."""
    from rag.core.config import load_settings
    from rag.generation.server import free_port
    from rag.service.pipeline import Pipeline

    link_models(rag_home, models_dir)
    docs = tmp_path / "papers"
    docs.mkdir()
    for name in ("1706.03762v7.pdf", "BPE.pdf"):
        shutil.copy(PAPERS / name, docs / name)
    report = Pipeline(load_settings(), "papers", embedder=minilm).index([docs])
    assert report.indexed == 2
    port = free_port()
    log = open(tmp_path / "ui.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli.main", "ui", "--kb", "papers", "--port", str(port),
         "--headless"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/_stcore/health", proc, "rag ui", 60, tmp_path / "ui.log")
        yield url
    finally:
        stop_group(proc, signal.SIGINT, timeout=60)
        log.close()
        assert not (rag_home / "run" / f"ui-{port}.json").exists(), "the launcher left its state"


def _ask(page, question: str) -> None:  # noqa: ANN001
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")


def test_chat_in_a_real_browser(app: str, tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: make setup installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        other = browser.new_context().new_page()  # a second tab: its own session
        page.goto(app)
        other.goto(app)
        # The app says it is loading the LLM, then enables the input once the server answers.
        box = page.get_by_test_id("stChatInputTextArea")
        expect(box).to_be_enabled(timeout=600_000)
        expect(other.get_by_test_id("stChatInputTextArea")).to_be_enabled(timeout=60_000)

        _ask(page, QUESTION)
        _ask(other, "What does byte pair encoding merge?")
        answer = page.get_by_test_id("stChatMessage").nth(1)
        lengths = set()
        deadline = time.time() + 300
        while not page.locator("a.cite").count() and time.time() < deadline:
            lengths.add(len(answer.inner_text()) if answer.count() else 0)
            time.sleep(0.1)
        assert page.locator("a.cite").count(), "no cited answer"
        assert len(lengths) > 3, f"the answer did not stream: lengths seen {sorted(lengths)}"

        # Both tabs got their answer.
        expect(other.get_by_test_id("stChatMessage").nth(1)).to_contain_text("[", timeout=300_000)
        assert "byte" in other.get_by_test_id("stChatMessage").nth(1).inner_text().lower()

        # Hover text and click: the marker names its source and jumps to the sources panel.
        marker = page.locator("a.cite").first
        n = marker.inner_text()
        assert "1706.03762v7" in (marker.get_attribute("title") or "")
        marker.click()
        pill = page.get_by_test_id("stButtonGroup").get_by_role("radio").filter(
            has_text=f"[{n}]").first
        pill.click()
        card = page.locator("[class*='st-key-source-']").first
        expect(card).to_contain_text("1706.03762v7", timeout=30_000)
        expect(card).to_contain_text("page 3")
        expect(card.locator("mark").first).to_contain_text("identical layers")

        page.get_by_test_id("stChatMessage").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "ui-chat.png"))

        # The cited page itself, with the passage marked.
        card.get_by_text("Show the page").click()
        image = card.locator("img").first
        expect(image).to_be_visible(timeout=60_000)
        image.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "ui-page.png"))

        # Uploading: one good file and one broken one; the report names the broken one.
        page.get_by_text("Documents", exact=True).click()
        notes, broken = tmp_path / "owls.md", tmp_path / "broken.pdf"
        notes.write_text("# Owls\n\nOwls hunt at night. Their feathers make no sound.\n")
        broken.write_bytes(b"%PDF-1.4\n this is not a PDF")
        upload(page, [notes, broken], ["owls.md", "broken.pdf"])
        page.get_by_role("button", name="Upload and index").click()
        expect(page.get_by_text("Indexed 1, unchanged 0, removed 0, failed 1")).to_be_visible(
            timeout=120_000)
        expect(page.get_by_text("broken.pdf").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "ui-documents.png"))
        browser.close()
