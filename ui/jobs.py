"""Indexing runs in background threads so the app stays responsive; every session sees the
same jobs (one at a time per knowledge base, as the KB's writer lock demands anyway)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.indexer import IndexReport
from ingest.parsing import Cancelled

log = logging.getLogger(__name__)


@dataclass
class IndexJob:
    """One job's live state; it is also the indexer's ``Progress``."""

    kb: str
    paths: list[str]
    refused: list[tuple[str, str]] = field(default_factory=list)  # uploads never saved
    files_total: int = 0
    files_done: int = 0
    chunks: int = 0
    current: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    report: IndexReport | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def fraction(self) -> float:
        return self.files_done / self.files_total if self.files_total else 0.0

    def start(self, files: int) -> None:
        self.files_total = files

    def file_done(self, path: str) -> None:
        self.files_done += 1
        self.current = path

    def chunks_done(self, count: int) -> None:
        self.chunks += count


Run = Callable[[list[Path], IndexJob], IndexReport]


class JobRunner:
    def __init__(self) -> None:
        self._jobs: dict[str, IndexJob] = {}
        self._lock = threading.Lock()

    def latest(self, kb: str) -> IndexJob | None:
        return self._jobs.get(kb)

    def running(self, kb: str) -> bool:
        job = self._jobs.get(kb)
        return job is not None and job.running

    def start(self, kb: str, paths: Sequence[Path], run: Run,
              refused: Sequence[tuple[str, str]] = ()) -> IndexJob:
        """Start ``run(paths, job)`` in a thread, unless a job for ``kb`` is still running."""
        with self._lock:
            current = self._jobs.get(kb)
            if current is not None and current.running:
                raise RuntimeError(f"an indexing job for {kb!r} is already running")
            job = IndexJob(kb, [str(p) for p in paths], list(refused))
            self._jobs[kb] = job
            if not paths:  # every upload was refused: nothing to run, only a report to show
                job.report, job.finished = IndexReport(), time.time()
                return job

        def work() -> None:
            try:
                job.report = run(list(paths), job)
            except Cancelled:
                job.error = "cancelled: the knowledge base answers as before this job"
            except Exception as exc:  # the job fails, the app does not
                log.exception("indexing job for %s failed", kb)
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()

        threading.Thread(target=work, name=f"index-{kb}", daemon=True).start()
        return job
