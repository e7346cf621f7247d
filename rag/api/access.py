"""Who may call the API and how much at once: keys per knowledge base, body limits, admission.

Every refusal is an ``ApiError`` that the app turns into OpenAI's error shape
(``{"error": {"message", "type", "code"}}``), so the ``openai`` client raises it with its reason."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.storage.keys import PREFIX, ApiKey, KeyStore

log = logging.getLogger("rag.api")

T = TypeVar("T")


class ApiError(Exception):
    """A request the API refuses or cannot serve: HTTP status, a stable code, one line why."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def body(self) -> dict[str, object]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "code": self.code,
                          "param": None}}


@dataclass(frozen=True)
class Caller:
    """The key behind a request; None when the server runs without keys (loopback only)."""

    key: ApiKey | None

    def may(self, kb: str, role: str = "read") -> bool:
        return self.key is None or self.key.may(kb, role)

    def require(self, kb: str, role: str = "read") -> None:
        """Checked before the knowledge base is looked up: a key learns nothing of the
        knowledge bases it may not read, not even whether they exist."""
        if not self.may(kb, role):
            raise ApiError(403, "forbidden", f"this API key may not {role} knowledge base {kb!r}")

    @property
    def admin_of_all(self) -> bool:
        return self.key is None or (self.key.role == "admin" and "*" in self.key.kbs)


def bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return headers.get("x-api-key", "").strip()


def identify(keys: KeyStore, headers: dict[str, str]) -> Caller:
    """The caller's key; without keys configured, everyone (the server then binds loopback)."""
    if not keys.required():
        return Caller(None)
    token = bearer(headers)
    if not token:
        raise ApiError(401, "missing_api_key", "this server needs an API key: send "
                       "'Authorization: Bearer rag_...' (rag keys create makes one)",
                       {"WWW-Authenticate": "Bearer"})
    key = keys.verify(token)
    if key is None:
        raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked",
                       {"WWW-Authenticate": "Bearer"})
    return Caller(key)


class BodyLimit:
    """ASGI middleware: a request body over its path's limit is refused with 413 before the
    route reads it (by its Content-Length, or counted while a chunked body comes in)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:  # the server then delivers no more than it declares
            if not declared.isdigit() or int(declared) > limit:
                await self._refuse(send, limit)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []  # a chunked body: read up to the limit, then handed on
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            seen += len(message.get("body", b""))
            if seen > limit:
                await self._refuse(send, limit)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        size = f"{limit / 2**20:.0f} MB" if limit >= 2**20 else f"{limit // 1024} KB"
        body = json.dumps(ApiError(413, "request_too_large",
                                   f"the request body is over this endpoint's limit of {size}"
                                   ).body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class AccessLog:
    """ASGI middleware: one INFO line per request on ``rag.api`` (method, path, status, the
    key's id, seconds): who did what, never a key itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope["headers"]}
            log.info("%s %s %s key=%s %.3fs", scope["method"], scope["path"], status,
                     key_id(bearer(headers)), time.perf_counter() - started)


def key_id(token: str) -> str:
    """The public id part of a key, for logs ("-": none, "?": not a rag key)."""
    if not token:
        return "-"
    parts = token.split("_", 2)
    ok = len(parts) == 3 and parts[0] == PREFIX and parts[1].isalnum() and len(parts[1]) <= 32
    return parts[1] if ok else "?"


class Admission:
    """A pool of worker threads for retrieval, answering and checking, and a bounded queue in
    front of it: beyond ``workers + max_queue`` requests the API answers 429 with Retry-After
    instead of piling work up. The generations of running answers reach the one LLM server
    together, where vLLM batches them."""

    def __init__(self, workers: int, max_queue: int, timeout_s: float) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="rag-api")
        self.limit, self.timeout_s = workers + max_queue, timeout_s
        self.pending = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.pending >= self.limit:
                raise ApiError(429, "too_many_requests",
                               f"{self.pending} requests are being answered or waiting "
                               "(api.workers + api.max_queue); try again shortly",
                               {"Retry-After": "5"})
            self.pending += 1

    def leave(self) -> None:
        with self._lock:
            self.pending -= 1

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` in the pool, counted from admission to its end (also past a timeout: its
        thread keeps the slot until it really stops)."""
        self.enter()
        future = self.pool.submit(work)
        future.add_done_callback(lambda _: self.leave())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            raise ApiError(504, "timeout", f"no answer within {self.timeout_s:.0f} s "
                           "(api.answer_timeout_s)") from None

    def submit(self, work: Callable[[], T]) -> concurrent.futures.Future[T]:
        """``work()`` in the pool for a streamed response (admitted like ``run``)."""
        self.enter()
        future = self.pool.submit(work)
        future.add_done_callback(lambda _: self.leave())
        return future
