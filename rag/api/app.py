"""The routes of `rag serve`. Each one identifies the caller's key, checks its role on the
knowledge base before looking the knowledge base up, and leaves the work to the shared Engine:
the same pipelines, upload limits and index jobs as the app."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rag.api.access import AccessLog, Admission, ApiError, BodyLimit, Caller, identify
from rag.api.openai_format import (
    MODEL_PREFIX,
    ChatRequest,
    Completion,
    conversation,
    error_event,
    kb_of,
    plain,
)
from rag.core.errors import GenerationError, KBError, KeyStoreError, RagError
from rag.core.redaction import redact
from rag.core.types import content_hash
from rag.service.engine import Engine
from rag.service.uploads import Upload
from rag.storage.kb import NAME
from rag.storage.keys import ALL_KBS, KeyStore

log = logging.getLogger("rag.api")
MAX_FILES = 100  # files one upload request may carry


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kb: str
    query: str = Field(max_length=8000)
    k: int | None = Field(None, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    rerank: bool | None = None


class CreateKb(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kbs: list[str] = Field(min_length=1, max_length=100)
    role: Literal["read", "write", "admin"] = "read"
    name: str = Field("", max_length=200)


def doc_id(path: str) -> str:
    return content_hash(path)


class _ClientGone(Exception):
    """The client of a streamed answer disconnected: its generation stops."""


def create_app(engine: Engine, keys: KeyStore | None = None) -> FastAPI:  # noqa: C901 - the routes
    settings, limits = engine.settings, engine.settings.api
    store = keys or KeyStore(settings.home)
    admission = Admission(limits.workers, limits.max_queue, limits.answer_timeout_s)
    app = FastAPI(title="rag", version=version("rag"), description=(
        "Cited answers from your documents: OpenAI-compatible chat (the knowledge base is the "
        "model, rag:NAME; provenance in the `rag` field), search and knowledge-base management. "
        "Send 'Authorization: Bearer rag_...' once keys exist (rag keys create)."))
    upload_limit = settings.ui.max_upload_mb * 2**20 + 2**20  # one file at the limit, and its form
    app.add_middleware(BodyLimit, limit_for=lambda path: upload_limit
                       if path.endswith("/documents") else limits.max_json_kb * 1024)
    app.add_middleware(AccessLog)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: "
                             f"{e['msg']}" for e in exc.errors()[:5])
        return await api_error(_, ApiError(400, "invalid_request", problems[:500]))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return await api_error(_, ApiError(exc.status_code, code, str(exc.detail)))

    @app.exception_handler(RagError)
    @app.exception_handler(ValueError)
    async def known(_: Request, exc: Exception) -> JSONResponse:
        return await api_error(_, as_api_error(exc))

    @app.exception_handler(Exception)
    async def failed(_: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s", redact(f"{type(exc).__name__}: {exc}"))
        return await api_error(_, as_api_error(exc))

    def caller(request: Request) -> Caller:
        return identify(store, {k.lower(): v for k, v in request.headers.items()})

    def existing(kb: str, missing: str = "kb_not_found") -> str:
        if kb not in engine.kbs():
            raise ApiError(404, missing, f"no knowledge base {kb!r}" + (
                f" (models are {MODEL_PREFIX}NAME for the knowledge bases GET /v1/models lists)"
                if missing == "model_not_found" else ""))
        return kb

    def check_k(k: int | None) -> int | None:
        if k is not None and k > limits.max_k:
            raise ApiError(400, "invalid_request", f"k: at most {limits.max_k} (api.max_k)")
        return k

    @app.get("/health", tags=["server"])
    def health() -> dict[str, object]:
        """Liveness, and whether the LLM answers (no key needed; tells nothing about data)."""
        ready, message = engine.llm_status()
        return {"status": "ok", "llm_ready": ready, "llm": message}

    @app.get("/v1/models", tags=["chat"])
    def models(request: Request) -> dict[str, object]:
        """The knowledge bases this key may ask, as OpenAI model ids (rag:NAME)."""
        who = caller(request)
        return {"object": "list", "data": [
            {"id": f"{MODEL_PREFIX}{kb}", "object": "model", "created": 0, "owned_by": "rag"}
            for kb in engine.kbs() if who.may(kb)]}

    @app.post("/v1/chat/completions", tags=["chat"], response_model=None)
    async def chat(body: ChatRequest, request: Request) -> dict[str, Any] | StreamingResponse:
        """An answer from the knowledge base the model names, every sentence cited and checked;
        follow-ups are rewritten from the conversation as in the app."""
        who = caller(request)
        kb = kb_of(body.model)
        if not NAME.fullmatch(kb):
            raise ApiError(404, "model_not_found", f"no model {body.model!r} (models are "
                           f"{MODEL_PREFIX}NAME: GET /v1/models lists them)")
        who.require(kb, "read")
        existing(kb, "model_not_found")
        question, history = conversation(body.messages, limits.max_messages,
                                         limits.max_question_chars)
        options = body.rag
        pipeline = engine.pipeline(kb)
        completion = Completion(body.model)

        def ask(on_token: Any = None) -> Any:  # noqa: ANN401
            return pipeline.ask(question, k=check_k(options.k), mode=options.mode,
                                rerank=options.rerank, history=history,
                                temperature=body.temperature, on_token=on_token)

        if not body.stream:
            return completion.response(await admission.run(ask), kb)
        with_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(stream(ask, completion, kb, with_usage),
                                 media_type="text/event-stream")

    async def stream(ask: Any, completion: Completion, kb: str,  # noqa: ANN401
                     with_usage: bool) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        gone = threading.Event()

        def put(kind: str, value: object) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        def on_token(token: str) -> None:
            if gone.is_set():
                raise _ClientGone()
            put("token", token)

        def work() -> None:
            try:
                put("answer", ask(on_token))
            except _ClientGone:
                pass
            except Exception as exc:  # reported in the stream: the headers are sent already
                put("error", exc)

        admission.submit(work)  # 429 here, before the stream starts
        try:
            yield completion.chunk({"role": "assistant", "content": ""})
            while True:
                kind, value = await asyncio.wait_for(events.get(), limits.answer_timeout_s)
                if kind == "token":
                    yield completion.chunk({"content": value})
                elif kind == "answer":
                    yield completion.last_chunk(value, kb, with_usage)
                    break
                else:
                    yield error_event(as_api_error(value))
                    break
            yield "data: [DONE]\n\n"
        except TimeoutError:
            yield error_event(ApiError(504, "timeout", "the answer stalled past "
                                       "api.answer_timeout_s"))
        finally:
            gone.set()

    @app.post("/v1/search", tags=["search"])
    async def search(body: SearchRequest, request: Request) -> dict[str, Any]:
        """Ranked passages with every score that put them there (dense, BM25, fused, rerank)."""
        who = caller(request)
        who.require(body.kb, "read")
        pipeline = engine.pipeline(existing(body.kb))
        k = check_k(body.k)
        result = await admission.run(lambda: pipeline.search(body.query, k=k, mode=body.mode,
                                                             rerank=body.rerank))
        return {"kb": body.kb, **plain(result.to_dict())}

    @app.get("/v1/kbs", tags=["knowledge bases"])
    def list_kbs(request: Request) -> dict[str, Any]:
        """The knowledge bases this key may read, with their size and embedder."""
        who = caller(request)
        data = []
        for kb in engine.kbs():
            if who.may(kb):
                stats = engine.pipeline(kb).stats()
                data.append({k: stats[k] for k in ("name", "files", "documents", "chunks",
                                                   "embedder", "dim", "updated")})
        return {"object": "list", "data": plain(data)}

    @app.post("/v1/kbs", tags=["knowledge bases"], status_code=201)
    def create_kb(body: CreateKb, request: Request) -> dict[str, Any]:
        """A new, empty knowledge base (admin keys, within their scope)."""
        who = caller(request)
        if not NAME.fullmatch(body.name):
            raise ApiError(400, "invalid_name", f"invalid knowledge base name {body.name!r}: "
                           "use letters, digits, '.', '_' or '-' (64 at most)")
        who.require(body.name, "admin")
        if body.name in engine.kbs():
            raise ApiError(409, "kb_exists", f"knowledge base {body.name!r} already exists")
        engine.create(body.name)
        return {"name": body.name, "created": True}

    @app.get("/v1/kbs/{kb}/documents", tags=["documents"])
    def documents(kb: str, request: Request) -> dict[str, Any]:
        caller(request).require(kb, "read")
        docs = engine.pipeline(existing(kb)).documents()
        return {"object": "list", "data": [
            {"id": doc_id(d.path), "file": d.path.rsplit("/", 1)[-1], "title": d.title,
             "kind": d.kind, "chunks": d.n_chunks, "warnings": d.warnings,
             "indexed_at": d.indexed_at} for d in docs]}

    @app.post("/v1/kbs/{kb}/documents", tags=["documents"], status_code=202)
    async def upload(kb: str, request: Request) -> dict[str, Any]:
        """Files (multipart, field ``files``) saved in the knowledge base and indexed by a
        background job, under the app's limits; GET /v1/jobs/{id} follows it."""
        caller(request).require(kb, "write")
        existing(kb)
        try:
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
        except Exception as exc:  # not multipart, too many parts, malformed
            raise ApiError(400, "invalid_upload", f"expected a multipart form with files: "
                           f"{redact(str(exc))[:200]}") from None
        uploads = [Upload(f.filename or "upload", await f.read())
                   for f in form.getlist("files") if hasattr(f, "filename")]
        await form.close()
        if not uploads:
            raise ApiError(400, "invalid_upload", "no files: send them in the multipart field "
                           "'files'")
        try:
            job = await asyncio.to_thread(engine.upload, kb, uploads)
        except RuntimeError as exc:
            raise ApiError(409, "job_running", str(exc)) from None
        return job.to_dict()

    @app.get("/v1/jobs/{job_id}", tags=["documents"])
    def job(job_id: str, request: Request) -> dict[str, Any]:
        """An index job's progress and, once done, its report (per-file failures with reasons)."""
        who = caller(request)
        found = engine.jobs.get(job_id)
        if found is None:
            raise ApiError(404, "job_not_found", f"no index job {job_id!r} (jobs are kept "
                           "until the server restarts)")
        who.require(found.kb, "read")
        return found.to_dict()

    @app.delete("/v1/kbs/{kb}/documents/{doc}", tags=["documents"])
    def remove(kb: str, doc: str, request: Request) -> dict[str, Any]:
        """Take a document out (by id, or by file name when only one has it)."""
        caller(request).require(kb, "write")
        docs = engine.pipeline(existing(kb)).documents()
        matches = [d.path for d in docs if doc_id(d.path) == doc] or [
            d.path for d in docs if d.path.rsplit("/", 1)[-1] == doc]
        if not matches:
            raise ApiError(404, "document_not_found", f"no document {doc!r} in {kb!r}")
        if len(matches) > 1:
            raise ApiError(409, "ambiguous_document", f"{len(matches)} documents are named "
                           f"{doc!r}: remove them by id (GET /v1/kbs/{kb}/documents)")
        try:
            dropped = engine.remove(kb, matches)
        except KBError as exc:
            raise ApiError(409, "kb_busy", str(exc)) from None
        return {"id": doc_id(matches[0]), "removed": True, "chunks_removed": dropped}

    # -- keys: admins manage the keys of their own knowledge bases ---------------------------
    def admin_scope(who: Caller, kbs: list[str]) -> None:
        for kb in kbs:
            if kb == ALL_KBS and not who.admin_of_all:
                raise ApiError(403, "forbidden", "only an admin key for every knowledge base "
                               "(*) may make keys for every knowledge base")
            if kb != ALL_KBS:
                who.require(kb, "admin")

    @app.get("/v1/keys", tags=["keys"])
    def list_keys(request: Request) -> dict[str, Any]:
        who = caller(request)
        if who.key is not None and who.key.role != "admin":
            raise ApiError(403, "forbidden", "only admin keys may list keys")
        visible = [k.public() for k in store.keys().values()
                   if all(who.admin_of_all or (kb != ALL_KBS and who.may(kb, "admin"))
                          for kb in k.kbs)]
        return {"object": "list", "data": visible}

    @app.post("/v1/keys", tags=["keys"], status_code=201)
    def create_key(body: CreateKey, request: Request) -> dict[str, Any]:
        """A new key; its secret is in this response only."""
        admin_scope(caller(request), body.kbs)
        try:
            record, key = store.create(body.kbs, body.role, body.name)
        except KeyStoreError as exc:
            raise ApiError(400, "invalid_key_request", str(exc)) from None
        return {**record.public(), "key": key}

    @app.delete("/v1/keys/{key_id}", tags=["keys"])
    def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
        who = caller(request)
        record = store.keys().get(key_id)
        if record is None:
            raise ApiError(404, "key_not_found", f"no API key with id {key_id!r}")
        admin_scope(who, list(record.kbs))
        return store.revoke(key_id).public()

    app.state.admission = admission
    return app


def as_api_error(exc: BaseException) -> ApiError:
    """What a failure inside a request tells the client: one line, credentials masked."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, GenerationError):
        return ApiError(502, "llm_failed", f"the LLM failed: {redact(str(exc))}")
    if isinstance(exc, KBError):
        return ApiError(409, "kb_error", redact(str(exc)))
    if isinstance(exc, ValueError):
        return ApiError(400, "invalid_request", redact(str(exc)))
    if isinstance(exc, RagError):  # a resource failed: a model, an index, the OCR engine
        return ApiError(503, "unavailable", redact(str(exc)))
    return ApiError(500, "internal_error", f"{type(exc).__name__}: {redact(str(exc))}"[:300])
