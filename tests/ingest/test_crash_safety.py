"""kill -9 at any moment leaves the previous KB fully usable; the next run finishes the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rag.core.config import load_settings
from rag.service.pipeline import Pipeline
from rag.storage.kb import KnowledgeBase
from tests.fakes import HashEmbedder
from tests.helpers import JOB, finds, make_files


def run_job(folder: Path, kill_after: float | None, *args: str) -> bool:
    """True if the job finished by itself."""
    env = {**os.environ, "PYTHONPATH": str(JOB.parents[1])}
    proc = subprocess.Popen([sys.executable, str(JOB), str(folder), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        return True
    time.sleep(kill_after)
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return False


def check_consistent(expect_word: str | None = None) -> int:
    """A fresh reader opens the live snapshot; every id resolves; search answers."""
    kb = KnowledgeBase("crash", load_settings())
    if kb.current_id() is None:
        return 0
    snap = kb.snapshot()
    chunks = kb.store.chunks_by_id(snap.ids)
    assert len(chunks) == len(set(snap.ids)), "live snapshot references collected chunks"
    assert len(snap) == len(snap.dense)
    if expect_word:
        hits = Pipeline(load_settings(), "crash", embedder=HashEmbedder()).search(
            expect_word, mode="bm25").hits
        assert hits and expect_word in hits[0].chunk.text.lower()
    kb.close()
    return len(snap)


def test_kill_at_any_moment(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    make_files(folder, "apple")
    started = time.perf_counter()
    # First complete run to learn the duration and have a live KB.
    run_job(folder, None)
    duration = time.perf_counter() - started
    full = check_consistent("apple")
    assert full > 0
    # Change every file, then kill the update at many points: the old KB must stay usable.
    make_files(folder, "banana")
    for fraction in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97):
        finished = run_job(folder, kill_after=duration * fraction)
        size = check_consistent()
        assert size > 0
        if finished:
            break
    # The next run completes the work; the KB then holds only the new version.
    run_job(folder, None)
    check_consistent("banana")
    kb = KnowledgeBase("crash", load_settings())
    assert kb.store.stats()["files"] == 30
    assert not finds("apple")


def test_kill_during_first_build_leaves_no_live_index(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    make_files(folder, "cherry", n=20)
    run_job(folder, kill_after=1.0)
    check_consistent()  # either nothing live yet or a consistent snapshot
    run_job(folder, None)
    assert check_consistent("cherry") > 0


def apple_kb_then_banana_files(folder: Path) -> int:
    """A live KB of "apple" files whose folder now holds "banana" files; its size."""
    make_files(folder, "apple")
    run_job(folder, None)
    size = check_consistent("apple")
    make_files(folder, "banana")
    return size


def test_killed_rebuild_keeps_the_previous_kb(tmp_path: Path) -> None:
    """--rebuild fills a new store beside the old one: killed anywhere, the old KB answers."""
    folder = tmp_path / "docs"
    full = apple_kb_then_banana_files(folder)
    started = time.perf_counter()
    run_job(folder, None, "--rebuild")  # learn the duration, then rebuild back to apple
    duration = time.perf_counter() - started
    check_consistent("banana")
    make_files(folder, "apple")
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.9):
        if run_job(folder, duration * fraction, "--rebuild"):
            break
        if finds("apple"):  # killed between the publish and the exit: the whole new KB
            assert check_consistent("apple") == full and not finds("banana")
            break
        assert check_consistent("banana") == full  # the whole previous KB, not a part
    run_job(folder, None, "--rebuild")
    check_consistent("apple")
    stores = sorted(p.name for p in (load_settings().kb_root / "crash").glob("kb*.sqlite"))
    assert len(stores) == 1, stores  # the replaced store and killed rebuilds' stores are gone


def test_ctrl_c_stops_the_job_and_keeps_the_kb(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) ends the job promptly, parser child included; the KB answers as before."""
    folder = tmp_path / "docs"
    before = apple_kb_then_banana_files(folder)
    env = {**os.environ, "PYTHONPATH": str(JOB.parents[1])}
    proc = subprocess.Popen([sys.executable, str(JOB), str(folder)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)  # no hang: the parse worker does not keep it alive
    if proc.returncode == 0:  # finished before the signal (a very fast machine)
        check_consistent("banana")
    else:
        assert check_consistent("apple") == before  # the live KB as it was
