"""Parsing runs in a child process, so a parser that loops, or a file that makes it explode, is
stopped after ``ingest.parse_timeout_s`` and reported while the job goes on; a cancel (Ctrl-C, the
UI's button) stops it at once instead of after the file."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from pathlib import Path

from ingest.loaders import Loaded, LoadError, load_file

POLL_S = 0.2


class Cancelled(Exception):
    """The job was asked to stop; what it committed so far stays, the live snapshot is unchanged."""


def _child_setup() -> None:
    # Ctrl-C reaches the whole process group; the parent decides, the child must not print a trace.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("pypdf").setLevel(logging.ERROR)


class ParseWorker:
    """One long-lived child process (spawned, not forked: the parent may hold torch threads)."""

    def __init__(self, timeout_s: float, max_pages: int) -> None:
        self.timeout_s = timeout_s
        self.max_pages = max_pages
        self._pool = None

    def load(self, path: Path, data: bytes, cancel: threading.Event | None = None) -> Loaded:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(1, initializer=_child_setup)
        result = self._pool.apply_async(load_file, (path, data, self.max_pages))
        deadline = time.monotonic() + self.timeout_s
        while True:
            result.wait(max(0.0, min(POLL_S, deadline - time.monotonic())))
            if result.ready():
                return result.get()
            if cancel is not None and cancel.is_set():
                self.close(kill=True)
                raise Cancelled("cancelled")
            if time.monotonic() >= deadline:
                self.close(kill=True)
                raise LoadError(
                    f"parsing took longer than {self.timeout_s:g} s (ingest.parse_timeout_s) "
                    "or the parser crashed; file skipped"
                )

    def close(self, kill: bool = False) -> None:
        if self._pool is not None:
            if kill:
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool.join()
            self._pool = None
