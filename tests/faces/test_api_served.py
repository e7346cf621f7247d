"""A real `rag serve` (real embedder and claim verifier) driven by the official openai client,
streaming and not; its LLM is a local fake OpenAI-compatible server, so the test is quick."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.generation.test_served import Fake
from tests.helpers import link_models, stop_group, wait_up

pytestmark = pytest.mark.integration

DOC = b"# Cats\n\nCats purr. A cat sleeps about fifteen hours a day and hunts at dusk.\n"


@pytest.fixture
def served(rag_home: Path, models_dir: Path, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`rag serve` with an admin key for knowledge base "pets"; yields (url, key, server log)."""
    from rag.generation.server import free_port
    from rag.storage.keys import KeyStore

    link_models(rag_home, models_dir)
    handler = type("Handler", (Fake,), {"mode": "ok", "calls": 0, "bodies": []})
    llm = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    _, key = KeyStore(rag_home).create(["pets", "ghost"], "admin")
    port = free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAG_GENERATOR__MODE="served",
               RAG_GENERATOR__SERVER_URL=f"http://127.0.0.1:{llm.server_address[1]}/v1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "-v", "serve", "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/health", proc, "rag serve", 120, log)
        yield url, key, log
    finally:
        stop_group(proc, signal.SIGINT, timeout=60)
        llm.shutdown()
    assert proc.returncode == 0, log.read_text()[-2000:]


def test_openai_client_gets_cited_answers_from_a_real_rag_serve(
        served: tuple[str, str, Path]) -> None:
    from openai import OpenAI

    url, key, log = served
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.post(f"{url}/v1/kbs", json={"name": "pets"}, headers=auth).status_code == 201
    files = [("files", ("cats.md", DOC)), ("files", ("broken.docx", b"PK\x03\x04 not a zip"))]
    job = httpx.post(f"{url}/v1/kbs/pets/documents", files=files, headers=auth).json()
    deadline = time.time() + 120
    while job["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
        job = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=auth).json()
    assert job["state"] == "done" and job["indexed"] == 1, job
    assert [f["file"] for f in job["failed"]] == ["broken.docx"] and job["failed"][0]["reason"]

    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["rag:pets"]
    question = [{"role": "user", "content": "Do cats purr?"}]
    answer = client.chat.completions.create(model="rag:pets", messages=question)
    assert answer.choices[0].message.content == "Cats purr [1]."
    rag = answer.model_extra["rag"]  # type: ignore[index]
    sentence = rag["sentences"][0]
    assert sentence["citations"] == [1] and sentence["supported"] is True
    assert rag["sources"][0]["title"] == "Cats" and rag["sources"][0]["cited"]
    assert rag["models"]["embedder"] and answer.usage and answer.usage.completion_tokens == 4

    chunks = list(client.chat.completions.create(model="rag:pets", messages=question,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Cats purr [1]."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["rag"]["sentences"][0]["citations"] == [1]  # type: ignore[index]

    from openai import NotFoundError, PermissionDeniedError

    with pytest.raises(NotFoundError, match="no knowledge base 'ghost'"):
        client.chat.completions.create(model="rag:ghost", messages=question)
    with pytest.raises(PermissionDeniedError, match="may not read"):
        client.chat.completions.create(model="rag:other", messages=question)
    logged = log.read_text()
    assert "POST /v1/chat/completions 200" in logged and key.split("_", 2)[2] not in logged
    assert json.dumps(key) not in logged
