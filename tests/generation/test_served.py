"""The served generator against local fake OpenAI-compatible servers: down, slow, flaky."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.core.config import GeneratorSettings
from rag.core.errors import GenerationError
from rag.generation.engines import VllmServedGenerator


class Fake(BaseHTTPRequestHandler):
    mode = "ok"
    calls = 0
    bodies: list[dict] = []  # type: ignore[type-arg]

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - /v1/models
        data = json.dumps({"object": "list", "data": [
            {"id": "rag-llm", "object": "model", "created": 0, "owned_by": "vllm"},
            {"id": "other-llm", "object": "model", "created": 0, "owned_by": "vllm"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if self.mode == "slow":
            time.sleep(2)
        if self.mode == "flaky" and type(self).calls == 1:
            self.send_response(503)
            self.end_headers()
            return
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, word in enumerate(["Cats ", "purr ", "[1]."]):
                if self.mode == "drop" and i == 2:  # the server dies mid-answer
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                chunk = {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                         "choices": [{"index": 0, "text": word, "logprobs": None,
                                      "finish_reason": "stop" if i == 2 else None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        payload = {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                   "choices": [{"index": i, "text": f"Cats purr{' ' * i} [1].",
                                "logprobs": None, "finish_reason": "stop"}
                               for i in range(body.get("n", 1))],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:  # the client gave up (timeout test)
            pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Fake]]]:
    handler = type("Handler", (Fake,), {"mode": "ok", "calls": 0, "bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    httpd.shutdown()


def generator(url: str, **kw: object) -> VllmServedGenerator:
    return VllmServedGenerator(GeneratorSettings(server_url=url, **kw), home=None)  # type: ignore[arg-type]


def test_generate_and_stream(server: tuple[str, type[Fake]]) -> None:
    url, _ = server
    gen = generator(url)
    out = gen.generate(["p1", "p2"], 16)
    assert [g.text for g in out] == ["Cats purr [1].", "Cats purr [1]."]
    assert out[0].completion_tokens == 4
    pieces = list(gen.stream("p", 16))
    assert "".join(p.text for p in pieces) == "Cats purr [1]." and pieces[-1].finish_reason == "stop"


def test_sample_asks_for_n_answers_to_one_prompt(server: tuple[str, type[Fake]]) -> None:
    url, handler = server
    out = generator(url).sample("p", 3, 16, 0.7)
    assert len({g.text for g in out}) == 3 and all(g.finish_reason == "stop" for g in out)
    assert (handler.bodies[-1]["n"], handler.bodies[-1]["temperature"]) == (3, 0.7)


def test_retries_a_flaky_server(server: tuple[str, type[Fake]]) -> None:
    url, handler = server
    handler.mode = "flaky"
    assert generator(url, retries=2).generate(["p"], 8)[0].text == "Cats purr [1]."
    assert handler.calls == 2


def test_slow_server_times_out_with_clear_message(server: tuple[str, type[Fake]]) -> None:
    url, handler = server
    handler.mode = "slow"
    started = time.perf_counter()
    with pytest.raises(GenerationError, match=r"failed after 0 retries.*Timeout"):
        generator(url, timeout_s=0.5, retries=0).generate(["p"], 8)
    assert time.perf_counter() - started < 5


def test_down_server_is_a_clear_error_not_a_hang() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = generator(f"http://127.0.0.1:{port}/v1", retries=1, timeout_s=2)
    started = time.perf_counter()
    with pytest.raises(GenerationError, match="rag serve-llm"):
        gen.generate(["p"], 8)
    with pytest.raises(GenerationError):
        list(gen.stream("p", 8))
    assert time.perf_counter() - started < 20
    assert not gen.healthy()


def test_request_options_and_model_list(server: tuple[str, type[Fake]]) -> None:
    url, handler = server
    gen = generator(url, temperature=0.0)
    gen.generate(["p"], 8)
    list(gen.stream("p", 8, temperature=0.7, model="other-llm"))
    assert [(b["model"], b["temperature"]) for b in handler.bodies] == [
        ("rag-llm", 0.0), ("other-llm", 0.7)]
    assert gen.models() == ["rag-llm", "other-llm"]


def test_server_dying_mid_stream_is_a_generation_error(server: tuple[str, type[Fake]]) -> None:
    url, handler = server
    handler.mode = "drop"
    gen = generator(url, retries=0)
    pieces: list[str] = []
    with pytest.raises(GenerationError, match="failed after 0 retries"):
        for piece in gen.stream("p", 8):
            pieces.append(piece.text)
    assert pieces == ["Cats ", "purr "]
    handler.mode = "ok"  # back again: the same generator works
    assert "".join(p.text for p in gen.stream("p", 8)) == "Cats purr [1]."


def test_model_list_when_the_server_is_down() -> None:
    assert generator("http://127.0.0.1:9/v1").models() == ["rag-llm"]


def test_ask_uses_a_running_server_else_the_embedded_engine(
        server: tuple[str, type[Fake]], capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli.common import dim
    from rag.core.config import load_settings
    from rag.generation.server import with_running_server

    settings = load_settings()
    up = settings.model_copy(update={"generator": GeneratorSettings(
        server_url=server[0], model="rag-llm")})  # the fake serves the model "rag-llm"
    assert with_running_server(up, dim).generator.mode == "served"
    other = settings.model_copy(update={"generator": GeneratorSettings(server_url=server[0])})
    assert with_running_server(other, dim).generator.mode == "embedded"  # another model there
    down = settings.model_copy(update={"generator": GeneratorSettings(
        server_url="http://127.0.0.1:9/v1")})
    assert with_running_server(down, dim).generator.mode == "embedded"
    said = " ".join(capsys.readouterr().err.split())
    assert "using the LLM server" in said and "serves rag-llm, other-llm, not bundled:" in said
    assert "no LLM server at http://127.0.0.1:9/v1" in said
