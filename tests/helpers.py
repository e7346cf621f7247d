"""What tests share that is not a fixture: where the shared corpora are, small corpora written
on the spot, and starting and stopping child processes. Fixtures live in conftest.py and reach
tests only through pytest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.service.pipeline import Pipeline
from tests.fakes import HashEmbedder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


PAPERS = SHARED / "corpora" / "papers"


PDF_EDGE = SHARED / "corpora" / "pdf-edge"


SCIFACT = SHARED / "datasets" / "scifact"


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


def link_models(home: Path, models: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(models, target_is_directory=True)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:  # type: ignore[type-arg]
    """Stop a child started with start_new_session=True, and everything it started."""
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_up(url: str, proc: subprocess.Popen, what: str, timeout: float = 120,  # type: ignore[type-arg]
            log: Path | None = None) -> None:
    """Wait until GET ``url`` answers 200; fail if ``proc`` exits first or time runs out (with
    the end of its ``log``)."""
    import time

    import httpx

    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        assert proc.poll() is None, f"{what} exited: {tail}"
        assert time.time() < deadline, f"{what} did not start: {tail}"
        time.sleep(0.5)


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cats.md").write_text("# Cats\n\nCats purr and sleep all day. They chase mice.\n")
    (folder / "dogs.txt").write_text("Dogs bark at the mailman. Dogs love long walks.\n")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "fish.html").write_text("<html><body><p>Fish swim in water.</p></body></html>")
    return folder


def tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Cats", "text": "Cats purr and sleep."},
            {"_id": "d2", "title": "Dogs", "text": "Dogs bark at the mailman."},
            {"_id": "d3", "title": "Fish", "text": "Fish swim in rivers."}]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    queries = [{"_id": "q1", "text": "which animal barks"}, {"_id": "q2", "text": "purring cats"},
               {"_id": "q3", "text": "zzzz qqqq"}, {"_id": "q9", "text": "not judged"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\nq3\td3\t1\n")
    return folder


JOB = Path(__file__).with_name("crash_job.py")


def finds(word: str) -> bool:
    return bool(Pipeline(load_settings(), "crash", embedder=HashEmbedder()).search(
        word, mode="bm25").hits)


def make_files(folder: Path, word: str, n: int = 30) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        text = " ".join(f"{word} sentence {i}.{j} about topic{i}." for j in range(40))
        (folder / f"doc{i:02}.txt").write_text(text)
