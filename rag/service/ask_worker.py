"""A background process that keeps retrieval loaded between `rag ask` commands.

A new `rag ask` spends several seconds importing sentence-transformers (and torch) and loading
the embedder and the KB before it can search, while an LLM server gives the first token in under
one. So while an LLM server is used, the first `rag ask` starts this worker
(and answers by itself, as before); later ones with the same settings and KB send their question
to it over a Unix socket and print the streamed answer. The worker reloads the KB's newest
snapshot for each question, answers one question at a time, and exits after
``generator.ask_worker_idle_s`` without one, counted from the last question or the last
change of its KB, and never while a job indexes it (a user who runs `rag index` between two asks
finds it still there). Its socket and lock live in ``$RAG_HOME/run`` (mode 0700): only the same
user can talk to it. A request is one line of at most ``MAX_REQUEST`` bytes that must arrive
within ``REQUEST_S``: a client that trickles or floods holds the others up no longer than that.

Protocol: one JSON line per request (question, k, mode, rerank); replies are JSON lines
``{"token": ...}`` while generating, then ``{"answer": {...}}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rag.core.config import Settings, remember_secrets
from rag.core.errors import WorkerError

MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes on Linux
MAX_REQUEST = 64 * 1024  # one question and its options
REQUEST_S = 5.0  # the whole request line, from the connection on
SEND_S = 60.0  # a client that stops reading the streamed answer is dropped after this
POLL_S = 5.0  # how often an idle worker looks at its KB


def _run_dir(settings: Settings) -> Path:
    run = settings.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    return run


def _key(settings: Settings, kb: str | None) -> str:
    """Workers are per settings and KB: a changed config or another KB gets its own."""
    raw = json.dumps([settings.model_dump(mode="json"), kb], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _socket_dir(run: Path, name: str) -> Path:
    """``run``, or where a socket's path there would be too long (AF_UNIX allows 108 bytes: a
    deep $RAG_HOME left `rag ask` without its worker, silently) this user's private folder in
    the system's temporary folder; ``run`` again if that folder is not this user's alone (then
    no worker starts: the socket's path is still too long)."""
    if len(str(run / name)) <= MAX_SOCKET_PATH:
        return run
    short = Path(tempfile.gettempdir()) / f"rag-{os.getuid()}"
    with contextlib.suppress(OSError):
        short.mkdir(mode=0o700, exist_ok=True)
        st = short.lstat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
            return short
    return run


def paths(settings: Settings, kb: str | None) -> tuple[Path, Path, Path]:
    """(socket, lock, settings file) of the worker for these settings and KB (the settings
    hold $RAG_HOME, so two homes never share a worker)."""
    run = _run_dir(settings)
    key = _key(settings, kb)
    sock = f"ask-{key}.sock"
    return _socket_dir(run, sock) / sock, run / f"ask-{key}.lock", run / f"ask-{key}.json"


def ask(settings: Settings, kb: str | None, question: str, k: int | None, mode: str | None,
        rerank: bool | None, on_token: Callable[[str], None] | None = None) -> dict | None:
    """The answer (``Answer.to_dict()``) from a running worker, or None when none is running
    (the caller answers by itself). Raises WorkerError when the worker reports one."""
    if settings.generator.ask_worker_idle_s <= 0:
        return None
    sock_path, _, _ = paths(settings, kb)
    if len(str(sock_path)) > MAX_SOCKET_PATH or not sock_path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(1.0)
        conn.connect(str(sock_path))
    except OSError:
        conn.close()
        return None
    with conn:
        conn.settimeout(settings.generator.timeout_s + 60)
        request = {"question": question, "k": k, "mode": mode, "rerank": rerank}
        conn.sendall(json.dumps(request).encode() + b"\n")
        for message in _lines(conn):
            if "token" in message:
                if on_token is not None:
                    on_token(message["token"])
            elif "answer" in message:
                return message["answer"]
            else:
                raise WorkerError(message.get("error", "the ask worker sent no answer"))
    raise WorkerError("the ask worker closed the connection before answering")


def _lines(conn: socket.socket) -> Iterator[dict]:
    with conn.makefile("rb") as reader:
        for line in reader:
            yield json.loads(line)


def start(settings: Settings, kb: str | None) -> bool:
    """Start a worker for these settings and KB unless one runs or is starting; True if one
    was started. The worker detaches (a new session, reparented away from this process), so
    this command's exit does not stop it."""
    if settings.generator.ask_worker_idle_s <= 0:
        return False
    sock_path, lock_path, settings_path = paths(settings, kb)
    if len(str(sock_path)) > MAX_SOCKET_PATH or _locked(lock_path):
        return False
    fd = os.open(settings_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:  # the settings hold the server's API key: 0600
        json.dump({"settings": settings.model_dump(mode="json"), "kb": kb}, out)
    log = settings.home / "logs" / "ask-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        subprocess.run([sys.executable, "-m", "rag.service.ask_worker", str(settings_path)],
                       stdin=subprocess.DEVNULL, stdout=err, stderr=err, check=False,
                       start_new_session=True, timeout=30)
    return True


def _locked(lock_path: Path) -> bool:
    """True while a worker holds the lock (it does from start-up to exit)."""
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def serve(settings: Settings, kb: str | None) -> None:
    """Load the pipeline, then answer connections one at a time until idle for too long."""
    from rag.service.pipeline import Pipeline

    sock_path, lock_path, _ = paths(settings, kb)
    lock = open(lock_path, "a")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another worker for these settings started first
    pipeline = Pipeline(settings, kb)
    pipeline.search("warm up", k=1)  # embedder, snapshot, BM25 and FAISS loaded now
    pipeline.answerer  # noqa: B018 - the support scorer and the server client, loaded now
    # Bound under a temporary name and renamed: a client never meets a half-started worker.
    temp = sock_path.with_suffix(".new")
    temp.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(temp))
    temp.chmod(0o600)
    server.listen(8)
    os.replace(temp, sock_path)
    try:
        serve_on(server, pipeline, settings.generator.ask_worker_idle_s)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            if sock_path.exists():
                sock_path.unlink()


def serve_on(server: socket.socket, pipeline, idle_s: float) -> None:  # noqa: ANN001 - Pipeline
    """Answer connections on ``server`` until ``idle_s`` pass with no question, no new snapshot
    of the KB and no job indexing it."""
    last = time.monotonic()
    server.settimeout(min(POLL_S, idle_s))
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            kb = pipeline.kb
            if kb.indexing() or time.time() - kb.changed_at() < idle_s:
                last = time.monotonic()
            if time.monotonic() - last >= idle_s:
                return
            continue
        with conn:
            _answer(pipeline, conn)
        last = time.monotonic()


def _read_request(conn: socket.socket) -> dict:
    """One JSON line, refused once it passes ``MAX_REQUEST`` bytes or ``REQUEST_S`` seconds."""
    deadline = time.monotonic() + REQUEST_S
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerError(f"the request did not arrive within {REQUEST_S:g} s")
        conn.settimeout(left)
        try:
            more = conn.recv(65536)
        except TimeoutError:
            continue
        if not more:
            raise WorkerError("the connection closed before the request ended")
        data += more
        if len(data) > MAX_REQUEST:
            raise WorkerError(f"the request is over {MAX_REQUEST // 1024} KB")
    return json.loads(data.split(b"\n", 1)[0])


def _answer(pipeline, conn: socket.socket) -> None:  # noqa: ANN001 - rag.service.pipeline.Pipeline
    def send(message: dict) -> None:
        conn.sendall(json.dumps(message, ensure_ascii=False, default=str).encode() + b"\n")

    try:
        request = _read_request(conn)
        conn.settimeout(SEND_S)
        pipeline.refresh()  # an index run since the last question: its snapshot now
        answer = pipeline.ask(request["question"], k=request.get("k"), mode=request.get("mode"),
                              rerank=request.get("rerank"),
                              on_token=lambda token: send({"token": token}))
        send({"answer": answer.to_dict()})
    except OSError:
        return  # the client went away (Ctrl-C) or stopped reading: nothing to send it
    except Exception as exc:  # reported to the client as its one-line error
        with contextlib.suppress(OSError):
            send({"error": str(exc) or type(exc).__name__})


def main() -> None:
    """``python -m rag.service.ask_worker SETTINGS_FILE``: detach (fork, the parent exits at once so the
    starting command goes on), then serve."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    if os.fork():
        os._exit(0)
    settings = Settings(**spec["settings"])  # every field given: no file or env can differ
    remember_secrets(settings)
    serve(settings, spec["kb"])


if __name__ == "__main__":
    main()
