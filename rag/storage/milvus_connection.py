"""Connections to Milvus: a client, and for Milvus Lite the in-process server that holds its
folder's lock, shared by every client of this process and stopped when the last one closes."""

from __future__ import annotations

import logging
import threading

from rag.core.errors import MilvusUnavailable
from rag.core.redaction import redact


class Connection:
    """One client; for Milvus Lite also the in-process server that holds the folder's lock."""

    def __init__(self, uri: str, token: str) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise MilvusUnavailable("index.backend = 'milvus' needs the scale extra: "
                                    "pip install 'rag[scale]'") from None
        # pymilvus (configuring its loggers on import) logs every failed call at ERROR with a
        # traceback, and Milvus Lite's gRPC server logs the calls it does not implement
        # (AllocTimestamp); rag reports real failures itself.
        for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer", "grpc._server"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.uri, self.token, self.lite = uri, token, "://" not in uri
        try:
            self.client = MilvusClient(uri=uri, token=token)
            if self.lite:
                with _LITE_LOCK:
                    _LITE_USERS[uri] = _LITE_USERS.get(uri, 0) + 1
        except Exception as exc:  # pymilvus raises its own exception tree for every failure
            if self.lite:
                raise MilvusUnavailable(
                    f"cannot open Milvus Lite at {uri}: Milvus Lite allows one process per index "
                    "(is the UI or another rag command using this knowledge base?); use a Milvus "
                    "server (index.milvus_uri) for several processes") from None
            raise MilvusUnavailable(redact(f"cannot reach Milvus at {uri}: {exc}")) from None

    def close(self) -> None:
        close_client(self.client, self.uri if self.lite else None)


# Milvus Lite runs one in-process server per folder, shared by every client of this process that
# opens it; the last one to close stops it (and frees the folder's lock).
_LITE_USERS: dict[str, int] = {}


_LITE_LOCK = threading.Lock()


def close_client(client: object, lite_path: str | None) -> None:
    """Close one client; the last one of a Milvus Lite folder stops its server and frees it."""
    try:
        client.close()  # type: ignore[attr-defined]
    finally:
        if lite_path is not None:
            with _LITE_LOCK:
                _LITE_USERS[lite_path] -= 1
                last = not _LITE_USERS[lite_path]
                if last:
                    del _LITE_USERS[lite_path]
            if last:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(lite_path)
