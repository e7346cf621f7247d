"""The HTTP API in-process (FastAPI's TestClient) with fake models: keys scoped to knowledge
bases on every endpoint, bad input answered with 4xx JSON, the queue limit, uploads. The real
`rag serve` with the openai client: tests/faces/test_api_served.py."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from rag.api.app import create_app, doc_id
from rag.service.engine import Engine
from rag.storage.keys import KeyStore
from tests.fakes import HashEmbedder, ReverseReranker, ScriptedGenerator

ANSWER = "Cats purr and sleep all day [1]."


def make_engine(settings, generator: ScriptedGenerator | None = None) -> Engine:  # noqa: ANN001
    embedder = HashEmbedder()
    return Engine(settings, embedder=embedder, reranker=ReverseReranker(),
                  generator=generator or ScriptedGenerator(*[ANSWER] * 50),
                  index_embedder=embedder)


def write_docs(folder: Path, animal: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{animal}.md").write_text(f"# {animal}\n\n{animal.title()} purr and sleep all day. "
                                         f"{animal.title()} chase mice.\n")
    return folder


@pytest.fixture
def engine(settings, tmp_path: Path) -> Engine:  # noqa: ANN001
    engine = make_engine(settings)
    for kb in ("a", "b"):
        report = engine.pipeline(kb).index([write_docs(tmp_path / kb, "cats" if kb == "a" else "lynx")])
        assert report.indexed == 1
    return engine


def client(engine: Engine, **kw: object) -> TestClient:
    return TestClient(create_app(engine), raise_server_exceptions=False, **kw)  # type: ignore[arg-type]


def ask_body(kb: str, question: str = "Do cats purr?", **kw: object) -> dict[str, object]:
    return {"model": f"rag:{kb}", "messages": [{"role": "user", "content": question}], **kw}


def wait_job(c: TestClient, job_id: str, headers: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    deadline = time.time() + 30
    while True:
        job = c.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] not in ("queued", "running") or time.time() > deadline:
            return job
        time.sleep(0.05)


def test_chat_answer_stream_and_follow_up_without_keys_on_loopback(engine: Engine) -> None:
    c = client(engine)
    assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["rag:a", "rag:b"]
    out = c.post("/v1/chat/completions", json=ask_body("a")).json()
    assert out["object"] == "chat.completion" and out["choices"][0]["message"]["content"] == ANSWER
    rag = out["rag"]
    assert rag["knowledge_base"] == "a" and rag["sentences"][0]["citations"] == [1]
    assert rag["sources"][0]["title"] == "cats" and out["usage"]["completion_tokens"] > 0
    events = [line.removeprefix("data: ") for line in c.post(
        "/v1/chat/completions", json=ask_body("a", stream=True)).text.splitlines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == ANSWER
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["rag"]["sentences"][0]["citations"] == [1]
    follow = ask_body("a", "And do they sleep?")
    follow["messages"] = [{"role": "system", "content": "be brief"},
                          {"role": "user", "content": "Do cats purr?"},
                          {"role": "assistant", "content": ANSWER}, *follow["messages"]]  # type: ignore[misc]
    engine.generator.queue.insert(0, "Do cats sleep all day?")  # type: ignore[attr-defined]
    rag = c.post("/v1/chat/completions", json=follow).json()["rag"]
    assert rag["standalone_query"] == "Do cats sleep all day?"


def test_search_kbs_and_health(engine: Engine) -> None:
    c = client(engine)
    hits = c.post("/v1/search", json={"kb": "a", "query": "mice", "k": 1, "mode": "bm25",
                                      "rerank": False}).json()["hits"]
    assert len(hits) == 1 and hits[0]["scores"]["bm25"] > 0
    assert [k["name"] for k in c.get("/v1/kbs").json()["data"]] == ["a", "b"]
    assert c.get("/health").json()["status"] == "ok"
    assert "/v1/chat/completions" in c.get("/openapi.json").json()["paths"]


def test_upload_indexes_and_reports_each_bad_file(engine: Engine) -> None:
    c = client(engine)
    files = [("files", ("birds.md", b"# Birds\n\nBirds sing at dawn.")),
             ("files", ("empty.md", b"")),
             ("files", ("broken.pdf", b"%PDF-1.7 not really a pdf"))]
    job = c.post("/v1/kbs/a/documents", files=files)
    assert job.status_code == 202
    done = wait_job(c, job.json()["id"])
    assert done["state"] == "done" and done["indexed"] == 1
    reasons = {f["file"]: f["reason"] for f in done["failed"]}
    assert set(reasons) == {"empty.md", "broken.pdf"} and "empty" in reasons["empty.md"]
    docs = {d["file"]: d for d in c.get("/v1/kbs/a/documents").json()["data"]}
    assert set(docs) == {"cats.md", "birds.md"}
    gone = c.delete(f"/v1/kbs/a/documents/{docs['birds.md']['id']}").json()
    assert gone["removed"] and gone["chunks_removed"] == 1
    assert c.delete("/v1/kbs/a/documents/birds.md").status_code == 404
    assert c.post("/v1/kbs", json={"name": "c"}).status_code == 201
    assert c.post("/v1/kbs", json={"name": "c"}).json()["error"]["code"] == "kb_exists"
    assert c.post("/v1/search", json={"kb": "c", "query": "x"}).json()["hits"] == []


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Every log record of the test, at every level, as text."""
    stream, root = io.StringIO(), logging.getLogger()
    handler, level = logging.StreamHandler(stream), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_key_for_one_kb_reaches_nothing_of_another(engine: Engine, rag_home: Path,
                                                     all_logs: io.StringIO,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    keys = KeyStore(rag_home)
    _, key_a = keys.create(["a"], "write")
    admin_record, admin_b = keys.create(["b"], "admin")
    c = client(engine)
    a = {"Authorization": f"Bearer {key_a}"}
    admin = {"Authorization": f"Bearer {admin_b}"}
    job_b = c.post("/v1/kbs/b/documents", files=[("files", ("x.md", b"# X\n\nx"))],
                   headers=admin).json()["id"]
    assert wait_job(c, job_b, admin)["indexed"] == 1
    cats_b = doc_id(str(engine.pipeline("b").documents()[0].path))
    refused = {
        "search": c.post("/v1/search", json={"kb": "b", "query": "x"}, headers=a),
        "ask": c.post("/v1/chat/completions", json=ask_body("b"), headers=a),
        "ask streamed": c.post("/v1/chat/completions", json=ask_body("b", stream=True), headers=a),
        "documents": c.get("/v1/kbs/b/documents", headers=a),
        "upload": c.post("/v1/kbs/b/documents", files=[("files", ("y.md", b"y"))], headers=a),
        "delete": c.delete(f"/v1/kbs/b/documents/{cats_b}", headers=a),
        "job": c.get(f"/v1/jobs/{job_b}", headers=a),
        "create kb": c.post("/v1/kbs", json={"name": "b2"}, headers=a),
        "make a key": c.post("/v1/keys", json={"kbs": ["b"]}, headers=a),
    }
    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 403)
    assert all(r.json()["error"]["code"] == "forbidden" for r in refused.values())
    assert [m["id"] for m in c.get("/v1/models", headers=a).json()["data"]] == ["rag:a"]
    assert [k["name"] for k in c.get("/v1/kbs", headers=a).json()["data"]] == ["a"]
    assert c.post("/v1/chat/completions", json=ask_body("a"), headers=a).status_code == 200
    assert len(engine.pipeline("b").documents()) == 2  # nothing of b removed
    # a read key may not write; an admin of b may make keys for b only
    _, read_a = keys.create(["a"], "read")
    r = {"Authorization": f"Bearer {read_a}"}
    assert c.post("/v1/kbs/a/documents", files=[("files", ("y.md", b"y"))],
                  headers=r).status_code == 403
    made = c.post("/v1/keys", json={"kbs": ["b"], "role": "read"}, headers=admin)
    assert made.status_code == 201 and made.json()["key"].startswith("rag_")
    assert c.post("/v1/keys", json={"kbs": ["*"]}, headers=admin).status_code == 403
    # missing, wrong and revoked keys
    assert c.get("/v1/models").json()["error"]["code"] == "missing_api_key"
    assert c.get("/v1/models", headers={"Authorization": "Bearer rag_00_nope"}).status_code == 401
    keys.revoke(KeyStore(rag_home).verify(key_a).id)  # type: ignore[union-attr]
    assert c.post("/v1/search", json={"kb": "a", "query": "x"}, headers=a).status_code == 401
    # never stored or logged in clear
    stored = (rag_home / "keys.json").read_text()
    assert key_a not in stored and admin_b not in stored and admin_record.digest in stored
    logged = all_logs.getvalue() + "".join(capfd.readouterr())
    assert "/v1/search" in logged  # the requests were logged, keys and all headers not
    assert key_a.split("_", 2)[2] not in logged and admin_b.split("_", 2)[2] not in logged
    assert (rag_home / "keys.json").stat().st_mode & 0o077 == 0


def test_bad_input_is_a_4xx_json_error_and_nothing_is_lost(engine: Engine) -> None:
    c = client(engine)
    before = [d.path for d in engine.pipeline("a").documents()]
    limit = engine.settings.api.max_json_kb * 1024
    cases = {
        "oversized body": (c.post("/v1/search", content=b"{" + b" " * limit + b"}",
                                  headers={"content-type": "application/json"}), 413),
        "chunked oversized body": (c.post("/v1/search", content=iter([b" " * limit] * 2),
                                          headers={"content-type": "application/json"}), 413),
        "malformed JSON": (c.post("/v1/chat/completions", content=b'{"model": "rag:a", ',
                                  headers={"content-type": "application/json"}), 400),
        "unknown knowledge base": (c.post("/v1/search", json={"kb": "nope", "query": "x"}), 404),
        "unknown model": (c.post("/v1/chat/completions", json=ask_body("nope")), 404),
        "invalid model name": (c.post("/v1/chat/completions", json=ask_body("../a")), 404),
        "negative k": (c.post("/v1/search", json={"kb": "a", "query": "x", "k": -3}), 400),
        "k over the limit": (c.post("/v1/chat/completions",
                                    json=ask_body("a", rag={"k": 10**6})), 400),
        "10,000 messages": (c.post("/v1/chat/completions", json={
            "model": "rag:a", "messages": [{"role": "user", "content": "hi"}] * 10_000}), 413),
        "no question": (c.post("/v1/chat/completions", json={
            "model": "rag:a", "messages": [{"role": "assistant", "content": "hi"}]}), 400),
        "no messages": (c.post("/v1/chat/completions", json={"model": "rag:a",
                                                              "messages": []}), 400),
        "not a form": (c.post("/v1/kbs/a/documents", json={"x": 1}), 400),
        "unknown document": (c.delete("/v1/kbs/a/documents/nope"), 404),
        "unknown job": (c.get("/v1/jobs/nope"), 404),
        "unknown route": (c.get("/v1/nope"), 404),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert error["code"] and error["message"] and "\n" not in error["message"], name
    assert c.post("/v1/chat/completions", json=ask_body("a")).status_code == 200  # still serving
    assert [d.path for d in engine.pipeline("a").documents()] == before


def test_beyond_the_queue_limit_the_api_answers_429(settings, tmp_path: Path,  # noqa: ANN001
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.config import load_settings

    monkeypatch.setenv("RAG_API__WORKERS", "1")
    monkeypatch.setenv("RAG_API__MAX_QUEUE", "1")
    release = threading.Event()

    class Slow(ScriptedGenerator):
        def generate(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            release.wait(30)
            return super().generate(*a, **k)

    engine = make_engine(load_settings(), Slow(*[ANSWER] * 5))
    engine.pipeline("a").index([write_docs(tmp_path / "a", "cats")])
    c = client(engine)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        c.post("/v1/chat/completions", json=ask_body("a")).status_code)) for _ in range(2)]
    for t in threads:
        t.start()
    admission = c.app.state.admission  # type: ignore[attr-defined]
    deadline = time.time() + 10
    while admission.pending < 2 and time.time() < deadline:
        time.sleep(0.02)
    busy = c.post("/v1/chat/completions", json=ask_body("a"))
    assert busy.status_code == 429 and busy.headers["Retry-After"]
    assert busy.json()["error"]["code"] == "too_many_requests"
    release.set()
    for t in threads:
        t.join(30)
    assert results == [200, 200]
    assert c.post("/v1/chat/completions", json=ask_body("a")).status_code == 200


def test_rag_keys_commands_and_serve_refuses_the_network_without_keys(
        rag_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.cli.main import cli

    logging.getLogger("rag").handlers.clear()
    refused = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code == 1 and "no API keys" in refused.output
    made = CliRunner().invoke(cli, ["keys", "create", "--kb", "papers", "--kb", "notes",
                                    "--role", "write", "--name", "ann", "--json"])
    assert made.exit_code == 0, made.output
    record = json.loads(made.stdout)
    assert record["key"].startswith("rag_") and record["kbs"] == ["papers", "notes"]
    listed = json.loads(CliRunner().invoke(cli, ["keys", "list", "--json"]).stdout)
    assert listed[0]["id"] == record["id"] and "key" not in listed[0] and "digest" not in listed[0]
    assert CliRunner().invoke(cli, ["keys", "revoke", record["id"]]).exit_code == 0
    assert KeyStore(rag_home).verify(record["key"]) is None
    bad = CliRunner().invoke(cli, ["keys", "create", "--kb", "../etc"])
    assert bad.exit_code == 1 and "invalid knowledge base name" in bad.output
    assert CliRunner().invoke(cli, ["keys", "revoke", "nope"]).exit_code == 1
