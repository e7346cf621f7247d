"""Indexing runs in background threads so the app and the API stay responsive; every session
and API client sees the same jobs (the API by id): one at a time per knowledge base (as the KB's
writer lock demands anyway), and at most ``ui.max_index_jobs`` at a time in all, since each runs
a parser child of up to ``ingest.parse_memory_mb``; the others wait their turn, shown as
queued."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.indexer import IndexReport
from rag.core.errors import Cancelled
from rag.core.redaction import redact

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
    queued: bool = True  # waiting for another knowledge base's job to end
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

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

    @property
    def state(self) -> str:
        if self.running:
            return "queued" if self.queued else "running"
        if self.error:
            return "cancelled" if self.error.startswith("cancelled") else "failed"
        return "done"

    def to_dict(self) -> dict[str, object]:
        """The job as the API reports it: progress, and per-file failures with their reasons
        (file names only: the server's folders are not the client's business)."""
        report = self.report or IndexReport()
        failed = ([{"file": Path(f.path).name, "reason": f.reason} for f in report.failed]
                  + [{"file": name, "reason": why} for name, why in self.refused])
        return {
            "id": self.id, "kb": self.kb, "state": self.state, "files_total": self.files_total,
            "files_done": self.files_done, "chunks": self.chunks,
            "current": Path(self.current).name if self.current else None,
            "started": self.started, "finished": self.finished, "error": self.error,
            "indexed": report.indexed, "unchanged": report.unchanged, "removed": report.removed,
            "chunks_added": report.chunks_added, "failed": failed,
            "warnings": [{"file": Path(w.path).name, "reason": w.reason} for w in report.warnings],
        }


Run = Callable[[list[Path], IndexJob], IndexReport]
Prepare = Callable[[], tuple[Sequence[Path], Sequence[tuple[str, str]]]]


class JobRunner:
    KEEP = 256  # finished jobs remembered for lookup by id

    def __init__(self, max_running: int = 1) -> None:
        self._jobs: dict[str, IndexJob] = {}
        self._by_id: OrderedDict[str, IndexJob] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_running)

    def latest(self, kb: str) -> IndexJob | None:
        return self._jobs.get(kb)

    def get(self, job_id: str) -> IndexJob | None:
        return self._by_id.get(job_id)

    def running(self, kb: str) -> bool:
        job = self._jobs.get(kb)
        return job is not None and job.running

    def start(self, kb: str, paths: Sequence[Path], run: Run,
              refused: Sequence[tuple[str, str]] = ()) -> IndexJob:
        """Start ``run(paths, job)`` in a thread, unless a job for ``kb`` is still running."""
        return self.prepare_and_start(kb, lambda: (paths, refused), run)

    def prepare_and_start(self, kb: str, prepare: Prepare, run: Run) -> IndexJob:
        """``prepare()`` (saving uploads: it returns the paths to index and the refused files)
        and the job's start under one lock, only if no job runs on ``kb``: two sessions
        uploading at once never overwrite each other's file under a running job."""
        with self._lock:
            current = self._jobs.get(kb)
            if current is not None and current.running:
                raise RuntimeError(f"an indexing job for {kb!r} is already running")
            paths, refused = prepare()
            job = IndexJob(kb, [str(p) for p in paths], list(refused))
            self._jobs[kb] = self._by_id[job.id] = job
            while len(self._by_id) > self.KEEP:
                self._by_id.popitem(last=False)
            if not paths:  # every upload was refused: nothing to run, only a report to show
                job.report, job.finished, job.queued = IndexReport(), time.time(), False
                return job

        def work() -> None:
            try:
                while not self._slots.acquire(timeout=0.5):  # another KB's job runs
                    if job.cancel.is_set():
                        raise Cancelled("cancelled")
                job.queued = False
                try:
                    job.report = run(list(paths), job)
                finally:
                    self._slots.release()
            except Cancelled:
                job.error = "cancelled: the knowledge base answers as before this job"
            except Exception as exc:  # the job fails, the app does not
                log.exception("indexing job for %s failed", kb)
                job.error = redact(f"{type(exc).__name__}: {exc}")
            finally:
                job.finished = time.time()

        threading.Thread(target=work, name=f"index-{kb}", daemon=True).start()
        return job
