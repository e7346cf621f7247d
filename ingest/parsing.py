"""Parsing runs in a child process, so a parser that loops, or a file that makes it explode, is
stopped and reported while the job goes on: after ``ingest.parse_timeout_s`` without progress
(each OCR'd page or table page is progress), or after ``ingest.file_budget_s`` in all. Both count
the CPU time of the child and of the OCR runs it waited for, so a busy machine does not make a
file fail that an idle one indexes (a child that does not run at all is stopped after
``HANG_FACTOR`` times the progress limit of wall time). A cancel (Ctrl-C, the UI's button) stops
it at once instead of after the file.

The child is ``python -m ingest.parsing``, a plain subprocess speaking pickles over its pipes:
unlike multiprocessing's spawn, it never re-imports the caller's main script, so scripts and
notebooks that index need no ``__main__`` guard.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from ingest.loaders import load_file
from ingest.ocr import HANG_FACTOR
from rag.core.children import child_env
from rag.core.errors import Cancelled, LoadError
from rag.core.types import Loaded, LoadOptions

POLL_S = 0.2
ALIVE = "alive"
HEADER = struct.Struct("!Q")


def _send(stream: IO[bytes], value: object) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(HEADER.pack(len(body)) + body)
    while data:  # an unbuffered pipe may take part of it
        data = data[stream.write(data):]
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError
        data += more
    return data


def _receive(stream: IO[bytes]) -> object:
    (size,) = HEADER.unpack(_read_exact(stream, HEADER.size))
    return pickle.loads(_read_exact(stream, size))


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the children it waited for (its finished OCR runs)."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system + t.children_user + t.children_system)


class ParseWorker:
    """One long-lived child process, started on first use and restarted after a kill."""

    def __init__(self, timeout_s: float, options: LoadOptions, memory_mb: int = 4096,
                 budget_s: float = 600.0) -> None:
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self.options = options
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._submitted_cpu = 0.0

    def _start(self) -> subprocess.Popen[bytes]:
        env = child_env(RAG_PARSER_MEMORY_MB=str(self.memory_mb))
        # unbuffered: select() sees the pipe, so no message may wait unseen in a read buffer
        return subprocess.Popen(
            [sys.executable, "-m", "ingest.parsing"], bufsize=0, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def load(self, path: Path, data: bytes, cancel: threading.Event | None = None) -> Loaded:
        self.submit(path, data)
        return self.result(cancel)

    def submit(self, path: Path, data: bytes) -> None:
        """Hand one file to the child, which parses it while the caller does other work
        (embedding the previous file); ``result`` collects it. One file at a time."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None
        self._submitted_cpu = cpu_seconds(proc.pid)
        try:
            _send(proc.stdin, (path, data, self.options))
        except BrokenPipeError:
            self.close(kill=True)
            raise LoadError("the parser process died before reading the file") from None

    def result(self, cancel: threading.Event | None = None) -> Loaded:
        """The submitted file's documents; LoadError if it cannot be parsed, makes no progress
        for ``timeout_s`` (counted from now: time spent elsewhere meanwhile is not held against
        it) or uses over ``budget_s`` in all (both CPU time, see the module's docstring);
        Cancelled when ``cancel`` is set."""
        proc = self._proc
        if proc is None:
            raise LoadError("the parser process died before reading the file")
        assert proc.stdout is not None
        progress_cpu, progress_wall = cpu_seconds(proc.pid), time.monotonic()
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], POLL_S)
            cpu = cpu_seconds(proc.pid)
            if ready:
                message = self._receive(proc)
                if message[0] != ALIVE:
                    break
                progress_cpu, progress_wall = cpu, time.monotonic()
            if cancel is not None and cancel.is_set():
                self.close(kill=True)
                raise Cancelled("cancelled")
            if cpu - self._submitted_cpu > self.budget_s:
                self.close(kill=True)
                raise LoadError(f"parsing used over {self.budget_s:g} s of CPU time in all "
                                "(ingest.file_budget_s); file skipped")
            if (cpu - progress_cpu > self.timeout_s
                    or time.monotonic() - progress_wall > self.timeout_s * HANG_FACTOR):
                self.close(kill=True)
                raise LoadError(f"parsing made no progress for {self.timeout_s:g} s "
                                "(ingest.parse_timeout_s); file skipped")
        ok, value = message
        if ok:
            return value  # type: ignore[return-value]
        raise value  # type: ignore[misc]

    def _receive(self, proc: subprocess.Popen[bytes]) -> tuple[object, object]:
        try:
            return _receive(proc.stdout)  # type: ignore[arg-type, return-value]
        except (EOFError, pickle.UnpicklingError):
            code = proc.wait()
            self._proc = None
            raise LoadError(f"the parser crashed on this file (exit status {code})") from None

    def close(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        elif proc.stdin is not None:
            proc.stdin.close()  # the child ends at end of input
        proc.wait()


def _serve() -> None:
    """The child's loop: one (path, data, options) in, one (ok, Loaded or exception) out, with
    (ALIVE, None) after each OCR'd page before it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    limit = int(os.environ.get("RAG_PARSER_MEMORY_MB", "0")) * 2**20
    if limit:  # a decompression bomb or a runaway parser gets MemoryError, not the OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a chatty library must not corrupt the protocol
    over_limit = LoadError("parsing needed more memory than ingest.parse_memory_mb allows; "
                           "file skipped")
    while True:
        try:
            path, data, options = _receive(stdin)  # type: ignore[misc]
        except EOFError:
            return
        except MemoryError:  # the file alone is over the limit; the stream may be mid-message,
            _send(stdout, (False, over_limit))  # so this child ends and the next file gets one
            return
        try:
            result: tuple[bool, object] = (
                True, load_file(path, data, options, lambda: _send(stdout, (ALIVE, None))))
        except MemoryError:
            result = (False, over_limit)
        except Exception as exc:  # sent back; the parent reports the file as failed
            error = exc if isinstance(exc, LoadError) else LoadError(f"{type(exc).__name__}: {exc}")
            result = (False, error)
        _send(stdout, result)


if __name__ == "__main__":
    _serve()
