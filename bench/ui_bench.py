"""How long `rag ui` takes to become usable, to answer, and to answer two tabs at once.

Starts `rag ui` on this repository's docs/ (bundled models), drives Debian's Chromium with
Playwright, and writes bench/results/ui.json. Each question is asked in a fresh tab (a new
session, so no follow-up rewriting). The two-tab run asks two other questions at once: vLLM's
prefix cache would make a repeated question nearly free, so no question is asked twice.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import throwaway_folder

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "ui.json"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
QUESTIONS = ["What happens when an indexing job is killed?", "How does rag check citations?"]
TOGETHER = ["Which retrieval modes does rag search offer?", "Where does rag keep its state?"]


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait(predicate, timeout: float, what: str) -> float:  # noqa: ANN001
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(what)
        time.sleep(0.1)
    return time.perf_counter() - started


def ask(page, question: str) -> None:  # noqa: ANN001
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")


def finished(page) -> bool:  # noqa: ANN001
    return page.locator("[data-testid='stCaptionContainer']", has_text="generate").count() > 0


def streaming(page) -> bool:  # noqa: ANN001
    messages = page.get_by_test_id("stChatMessage")
    return messages.count() > 1 and "▌" in messages.nth(1).inner_text()


def one(browser, url: str, question: str) -> dict[str, float]:  # noqa: ANN001
    page = browser.new_context().new_page()
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(state="visible")
    wait(lambda: page.get_by_test_id("stChatInputTextArea").is_enabled(), 60, "input")
    started = time.perf_counter()
    ask(page, question)
    first = wait(lambda: streaming(page) or finished(page), 300, "first token")
    wait(lambda: finished(page), 300, "answer")
    total = time.perf_counter() - started
    page.context.close()
    return {"first_text_s": round(first, 2), "answer_s": round(total, 2)}


def main() -> None:
    from playwright.sync_api import sync_playwright

    home = throwaway_folder("rag-ui-bench-")
    models = Path("~/.rag/models").expanduser()
    if models.is_dir():
        (home / "models").parent.mkdir(parents=True, exist_ok=True)
        (home / "models").symlink_to(models)
    env = dict(os.environ, RAG_HOME=str(home), HF_HUB_OFFLINE="1")
    rag = [sys.executable, "-m", "rag.cli.main"]
    subprocess.run([*rag, "index", str(ROOT / "docs"), "--kb", "docs"], env=env, check=True,
                   capture_output=True)
    port = 8765
    started = time.perf_counter()
    proc = subprocess.Popen([*rag, "ui", "--kb", "docs", "--port", str(port), "--headless"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    result: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    try:
        result["app_up_s"] = round(wait(lambda: up(f"{url}/_stcore/health"), 120, "app"), 1)
        state = home / "run" / f"ui-{port}.json"
        wait(state.exists, 30, "state file")
        llm = json.loads(state.read_text())["url"].removesuffix("/v1")
        wait(lambda: up(f"{llm}/health"), 900, "LLM server")
        result["llm_ready_s"] = round(time.perf_counter() - started, 1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            one(browser, url, "Which file types can be indexed?")  # warm-up: loads the embedder
            alone = [one(browser, url, q) for q in QUESTIONS]
            pages = [browser.new_context().new_page() for _ in TOGETHER]
            for page in pages:
                page.goto(url)
                wait(lambda p=page: p.get_by_test_id("stChatInputTextArea").count() > 0
                     and p.get_by_test_id("stChatInputTextArea").is_enabled(), 60, "input")
            t0 = time.perf_counter()
            for page, question in zip(pages, TOGETHER, strict=True):
                ask(page, question)
            wait(lambda: all(finished(p) for p in pages), 600, "two tabs")
            together = time.perf_counter() - t0
            browser.close()
        result["one_tab"] = dict(zip(QUESTIONS, alone, strict=True))
        sequential = sum(a["answer_s"] for a in alone)
        result["two_tabs_at_once"] = {"questions": TOGETHER, "both_answered_s": round(together, 2)}
        result["one_tab_answers_sum_s"] = round(sequential, 2)
        result["two_tabs_vs_one_tab_sum"] = round(together / sequential, 2)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
