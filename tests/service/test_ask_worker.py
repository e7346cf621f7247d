"""`rag ask` with an LLM server: the first command starts the background ask worker, later ones
are searched and answered through it (new documents included), and it exits when idle."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.generation.answering import Answer
from rag.grounding.citations import Sentence
from tests.helpers import link_models

IDLE_S = 60  # outlasts a `rag index` between two asks on a loaded machine


class FakeLlm(BaseHTTPRequestHandler):
    """vLLM's routes as `rag ask` uses them: /health, /v1/models (the bundled model's folder as
    root), streamed completions that cite source 1."""

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, value: object) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._json({"data": [{"id": "rag-llm", "root": "/m/qwen2.5-coder-0.5b-instruct"}]}
                   if self.path.endswith("/models") else {})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        words = ["Cats purr ", "when content [1]."]
        if not body.get("stream"):
            self._json({"id": "x", "object": "text_completion", "created": 0, "model": "m",
                        "choices": [{"index": 0, "text": "".join(words), "logprobs": None,
                                     "finish_reason": "stop"}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, word in enumerate(words):
            chunk = {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "text": word, "logprobs": None,
                                  "finish_reason": "stop" if i == len(words) - 1 else None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def llm_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeLlm)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_answer_survives_a_json_round_trip() -> None:
    answer = Answer("q", "Cats purr [1].", [Sentence("Cats purr [1].", [1], ["c1"], 0.9, True,
                                                     evidence={1: [0, 10]})],
                    [{"n": 1, "cited": True}], False, [], {"generate_s": 1.0}, {"llm": "m"})
    assert Answer.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def rag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rag.cli.main", *args], env=env, text=True,
                          capture_output=True, timeout=600)


@pytest.mark.integration
def test_later_asks_go_through_the_worker(tmp_path: Path, rag_home: Path, models_dir: Path,
                                          llm_url: str) -> None:
    link_models(rag_home, models_dir)
    env = {**os.environ, "RAG_GENERATOR__SERVER_URL": llm_url,
           "RAG_GENERATOR__ASK_WORKER_IDLE_S": str(IDLE_S)}
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("# Cats\n\nCats purr when they are content and relaxed.\n")
    assert rag("index", str(docs), "--kb", "pets", env=env).returncode == 0

    first = rag("ask", "Why do cats purr?", "--kb", "pets", env=env)
    assert first.returncode == 0, first.stderr
    assert "Cats purr when content [1]." in first.stdout and "ask worker" not in first.stderr
    run = rag_home / "run"  # or, under a deep tmp_path, the user's short socket folder

    def sockets() -> list[Path]:  # this home's: its lock file has the socket's name
        short = Path(tempfile.gettempdir()) / f"rag-{os.getuid()}"
        return [s for d in (run, short) for s in d.glob("ask-*.sock")
                if (run / f"{s.stem}.lock").exists()]

    deadline = time.monotonic() + 300  # the worker loads the embedder and the KB
    while not sockets() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sockets(), (rag_home / "logs" / "ask-worker.log").read_text()

    (docs / "dogs.md").write_text("# Dogs\n\nDogs bark at strangers near the house.\n")
    assert rag("index", str(docs), "--kb", "pets", env=env).returncode == 0
    second = rag("ask", "Why do dogs bark?", "--kb", "pets", env=env)
    assert second.returncode == 0, second.stderr
    assert "searched by the background ask worker" in second.stderr
    assert "Cats purr when content [1]." in second.stdout  # streamed, then the footer
    sources = second.stdout.split("Sources", 1)[1].replace("\n", "")  # long paths wrap
    assert "dogs.md" in sources  # the new document is searched
    as_json = rag("ask", "Why do cats purr?", "--kb", "pets", "--json", env=env)
    assert json.loads(as_json.stdout)["sentences"][0]["citations"] == [1]

    other_kb = rag("ask", "Why do cats purr?", "--kb", "missing", env=env)
    assert other_kb.returncode == 1 and "ask worker" not in other_kb.stderr  # its own worker
    deadline = time.monotonic() + IDLE_S + 60
    while list(run.glob("ask-*.sock")) and time.monotonic() < deadline:
        time.sleep(1)
    assert not list(run.glob("ask-*.sock")), "the idle worker did not exit"


class FakeKb:
    def __init__(self) -> None:
        self.busy = False

    def indexing(self) -> bool:
        return self.busy

    def changed_at(self) -> float:
        return 0.0


class FakePipeline:
    """What the worker calls on its pipeline; answers at once."""

    def __init__(self) -> None:
        self.kb = FakeKb()

    def refresh(self) -> None: ...

    def ask(self, question: str, k, mode, rerank, on_token) -> Answer:  # noqa: ANN001
        on_token("Yes.")
        return Answer(question, "Yes.", [], [], False, [], {}, {})


def worker_socket(tmp_path: Path, pipeline: FakePipeline, idle_s: float = 60
                  ) -> tuple[Path, threading.Thread]:
    import socket

    from rag.service.ask_worker import serve_on

    path = tmp_path / "w.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    thread = threading.Thread(target=serve_on, args=(server, pipeline, idle_s), daemon=True)
    thread.start()
    return path, thread


def request(path: Path, data: bytes, timeout: float = 30) -> list[dict]:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        try:
            conn.sendall(data)
        except OSError:  # the worker stopped reading a flood and closed: its reply is there
            pass
        replies = b""
        try:
            while more := conn.recv(65536):
                replies += more
        except ConnectionResetError:  # closed with the flood unread: the kernel resets
            return [{"error": "reset"}]
    return [json.loads(line) for line in replies.splitlines()]


def test_a_flooding_or_trickling_client_holds_up_no_other_ask(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from rag.service import ask_worker

    monkeypatch.setattr(ask_worker, "REQUEST_S", 1.0)
    path, _ = worker_socket(tmp_path, FakePipeline())
    flood = request(path, b"x" * (8 * 2**20))  # no newline: would be buffered whole before
    assert flood[-1]["error"] in ("reset", "the request is over 64 KB")
    trickler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trickler.connect(str(path))
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                trickler.send(b"{")
            time.sleep(0.1)

    threading.Thread(target=trickle, daemon=True).start()
    time.sleep(0.2)
    started = time.monotonic()
    replies = request(path, json.dumps({"question": "Q?"}).encode() + b"\n")
    stop.set()
    trickler.close()
    assert replies[0] == {"token": "Yes."} and replies[-1]["answer"]["text"] == "Yes."
    assert time.monotonic() - started < 10  # the trickler was cut off at REQUEST_S


def test_the_worker_stays_while_its_kb_is_being_indexed(tmp_path: Path) -> None:
    pipeline = FakePipeline()
    pipeline.kb.busy = True  # a `rag index` between two asks, longer than the idle limit
    _, thread = worker_socket(tmp_path, pipeline, idle_s=0.5)
    time.sleep(2.0)
    assert thread.is_alive()
    pipeline.kb.busy = False
    thread.join(10)
    assert not thread.is_alive()


def test_a_deep_rag_home_puts_the_socket_in_a_private_temporary_folder(tmp_path: Path) -> None:
    """AF_UNIX paths are short: under a deep $RAG_HOME the worker's socket goes to this user's
    0700 folder in the temporary folder (lock and settings stay in the home)."""
    from rag.core.config import Settings
    from rag.service.ask_worker import MAX_SOCKET_PATH, paths

    shallow = Settings.model_validate({"home": str(tmp_path / "h")})
    sock, lock, _ = paths(shallow, "kb")
    if len(str(lock)) <= MAX_SOCKET_PATH - 2:
        assert sock.parent == lock.parent
    deep = Settings.model_validate({"home": str(tmp_path / ("d" * 120))})
    sock, lock, settings_file = paths(deep, "kb")
    assert len(str(sock)) <= MAX_SOCKET_PATH and sock.parent != lock.parent
    assert lock.parent == settings_file.parent == deep.home / "run"
    assert sock.parent.stat().st_uid == os.getuid() and not sock.parent.stat().st_mode & 0o077
    assert paths(Settings.model_validate({"home": str(tmp_path / ("e" * 120))}), "kb")[0] != sock
