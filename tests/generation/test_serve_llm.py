"""`rag serve-llm` starts vLLM's OpenAI-compatible server; the served generator answers from it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.generation.engines import VllmServedGenerator
from rag.service.pipeline import Pipeline
from tests.helpers import link_models, stop_group, write_corpus

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_llm_and_ask_over_http(tmp_path: Path, rag_home: Path, minilm,  # noqa: ANN001
                                     models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link_models(rag_home, models_dir)
    port = free_port()
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli.main", "serve-llm", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        monkeypatch.setenv("RAG_GENERATOR__MODE", "served")
        monkeypatch.setenv("RAG_GENERATOR__SERVER_URL", f"http://127.0.0.1:{port}/v1")
        settings = load_settings()
        pipeline = Pipeline(settings, "t", embedder=minilm)
        generator = pipeline.generator
        assert isinstance(generator, VllmServedGenerator)
        deadline = time.monotonic() + 480
        while not generator.healthy():
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not become healthy"
            time.sleep(2)
        pipeline.index([write_corpus(tmp_path / "docs")])
        pieces: list[str] = []
        answer = pipeline.ask("What do dogs bark at?", k=2, on_token=pieces.append)
        assert answer.text and "".join(pieces).strip() == answer.text
        assert answer.finish_reason in {"stop", "length"}
        batch = pipeline.ask_many(["What do cats do?", "Where do fish swim?"], k=2)
        assert all(a.text for a in batch)
    finally:
        stop_group(server)
        log.close()
