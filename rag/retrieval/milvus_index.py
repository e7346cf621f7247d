"""The Milvus backend: a snapshot's vectors, texts and BM25 in one Milvus collection.

Each publish fills a new collection (row i = snapshot position i, as in the FAISS backend) and the
KB's ``CURRENT`` pointer switches to it, so the snapshot rules do not change: a killed job leaves
the previous collection live. ``index.milvus_uri`` empty means Milvus Lite, a folder inside the
snapshot (in-process, one process at a time: milvus-lite#264); else a Milvus server. Index type
and search parameters are pinned from the config, never AUTOINDEX, so Lite and servers agree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.config import IndexSettings

log = logging.getLogger(__name__)
# pymilvus logs every failed call at ERROR with a traceback, and Milvus Lite's gRPC server logs
# the calls it does not implement (AllocTimestamp); rag reports real failures itself.
for _name in ("pymilvus", "grpc._server"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)
INFO = "milvus.json"  # in the snapshot folder: where its collection lives
LITE = "milvus.db"
INSERT_BATCH = 2000
TEXT_BYTES = 65_535  # Milvus VARCHAR limit
GPU_INDEXES = {"GPU_IVF_FLAT", "GPU_CAGRA"}


class MilvusUnavailable(RuntimeError):
    """Milvus cannot be used: extra not installed, server down, Lite file held by another process."""


def collection_name(kb_path: Path, snap_id: str) -> str:
    """Unique per KB folder and snapshot, so KBs can share one server."""
    digest = hashlib.sha256(str(kb_path.resolve()).encode()).hexdigest()[:10]
    return f"rag_{digest}_{snap_id.replace('-', '_')}"


def index_type(settings: IndexSettings) -> str:
    if settings.milvus_index != "auto":
        return settings.milvus_index
    return {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}[settings.kind]


def build_params(kind: str, n: int, settings: IndexSettings) -> dict[str, int]:
    if kind in {"IVF_FLAT", "GPU_IVF_FLAT"}:
        return {"nlist": settings.nlist or max(1, min(65_536, int(4 * math.sqrt(max(n, 1)))))}
    if kind == "HNSW":
        return {"M": settings.hnsw_m, "efConstruction": max(40, settings.hnsw_m * 2)}
    if kind == "GPU_CAGRA":
        return {"intermediate_graph_degree": 64, "graph_degree": 32}
    return {}


def search_params(kind: str, k: int, settings: IndexSettings) -> dict[str, int]:
    if kind in {"IVF_FLAT", "GPU_IVF_FLAT"}:
        return {"nprobe": settings.nprobe}
    if kind == "HNSW":
        return {"ef": max(settings.ef_search, k)}
    if kind == "GPU_CAGRA":
        return {"itopk_size": max(128, k)}
    return {}


def _truncate(text: str) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= TEXT_BYTES else data[:TEXT_BYTES].decode("utf-8", "ignore")


class _Connection:
    """One client; for Milvus Lite also the in-process server that holds the folder's lock."""

    def __init__(self, uri: str, token: str) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise MilvusUnavailable("index.backend = 'milvus' needs the scale extra: "
                                    "pip install 'rag[scale]'") from None
        self.uri, self.lite = uri, "://" not in uri
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
            raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {exc}") from None

    def close(self) -> None:
        _close(self.client, self.uri if self.lite else None)


# Milvus Lite runs one in-process server per folder, shared by every client of this process that
# opens it; the last one to close stops it (and frees the folder's lock).
_LITE_USERS: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


def _close(client: object, lite_path: str | None) -> None:
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


def _uri(folder: Path, settings: IndexSettings) -> str:
    return settings.milvus_uri or str(folder / LITE)


def write(folder: Path, name: str, texts: Sequence[str], vectors: np.ndarray,
          settings: IndexSettings) -> bool:
    """Create and fill the snapshot's collection; True when it also does BM25 (else the caller
    builds the local one). ``milvus.json`` is written first, so a killed publish's collection
    is found and dropped by the next one."""
    uri = _uri(folder, settings)
    (folder / INFO).write_text(json.dumps({"uri": settings.milvus_uri, "collection": name}))
    conn = _Connection(uri, settings.milvus_token)
    try:
        kind = index_type(settings)
        # Milvus Lite's analyzer does not stem: on SciFact its BM25 lost 0.024 hybrid nDCG@10 to
        # the local (stemmed) index (bench/results/index_backends.json), so auto keeps bm25s.
        full_text = settings.milvus_bm25 == "milvus" or (settings.milvus_bm25 == "auto"
                                                         and not conn.lite)
        try:
            _create(conn, name, vectors.shape[1], kind, len(vectors), settings, full_text)
        except Exception as exc:
            if not full_text or settings.milvus_bm25 == "milvus":
                raise RuntimeError(f"Milvus cannot create the collection: {exc}") from None
            log.warning("Milvus has no full-text BM25 here (%s); using the local BM25 index", exc)
            full_text = False
            conn.client.drop_collection(name)
            _create(conn, name, vectors.shape[1], kind, len(vectors), settings, full_text)
        for start in range(0, len(vectors), INSERT_BATCH):
            rows = range(start, min(start + INSERT_BATCH, len(vectors)))
            conn.client.insert(name, [{"row": i, "text": _truncate(texts[i]),
                                       "vector": vectors[i].tolist()} for i in rows])
        conn.client.flush(name)
    finally:
        conn.close()
    (folder / INFO).write_text(json.dumps({"uri": settings.milvus_uri, "collection": name,
                                           "bm25": full_text, "index": kind}))
    return full_text


def _create(conn: _Connection, name: str, dim: int, kind: str, n: int,
            settings: IndexSettings, full_text: bool) -> None:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    # Servers analyse with stemming and stop words like the local index; Lite has no stemmer.
    analyzer = {} if conn.lite else {"analyzer_params": {"type": "english"}}
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES,
                     enable_analyzer=full_text, **(analyzer if full_text else {}))
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    params = conn.client.prepare_index_params()
    params.add_index("vector", index_type=kind, metric_type="IP",
                     params=build_params(kind, n, settings))
    if full_text:
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["sparse"]))
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    shards = {} if conn.lite else {"num_shards": settings.milvus_shards}
    conn.client.create_collection(name, schema=schema, index_params=params,
                                  consistency_level="Strong", **shards)


def info(folder: Path) -> dict[str, object] | None:
    try:
        return json.loads((folder / INFO).read_text())
    except (FileNotFoundError, ValueError):
        return None


def drop(folder: Path, settings: IndexSettings) -> None:
    """Drop a replaced snapshot's server collection (Lite's goes with its folder)."""
    recorded = info(folder)
    if not recorded or not recorded.get("uri"):
        return
    try:
        conn = _Connection(str(recorded["uri"]), settings.milvus_token)
        try:
            conn.client.drop_collection(str(recorded["collection"]))
        finally:
            conn.close()
    except Exception as exc:  # the new snapshot is live; a leftover collection only costs space
        log.warning("could not drop Milvus collection %s: %s", recorded.get("collection"), exc)


class MilvusIndex:
    """One snapshot's collection: dense search (VectorIndex) and, via ``text_index``, BM25."""

    def __init__(self, folder: Path, size: int, settings: IndexSettings) -> None:
        recorded = info(folder) or {}
        self.name = str(recorded.get("collection", ""))
        self.full_text = bool(recorded.get("bm25"))
        self.kind = str(recorded.get("index", index_type(settings)))
        self.size, self.settings = size, settings
        conn = _Connection(str(recorded.get("uri") or folder / LITE), settings.milvus_token)
        self.client = conn.client
        self._finalizer = weakref.finalize(self, _close, conn.client,
                                           conn.uri if conn.lite else None)
        try:
            self.client.load_collection(self.name)
        except Exception as exc:
            self.close()
            raise MilvusUnavailable(f"cannot load Milvus collection {self.name}: {exc}") from None

    def close(self) -> None:
        self._finalizer()

    def __len__(self) -> int:
        return self.size

    def _rows(self, results: list, k: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
        rows = np.full((len(results), k), -1, dtype=np.int64)
        scores = np.zeros((len(results), k), dtype=np.float32)
        for q, hits in enumerate(results):
            for j, hit in enumerate(list(hits)[:k]):
                rows[q, j] = int(hit.get("row", hit.get("id")))
                scores[q, j] = float(hit["distance"])
        return rows, scores

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        if k <= 0:
            return self._rows([[] for _ in queries], 0)
        results = self.client.search(
            self.name, data=np.asarray(queries, dtype=np.float32).tolist(), anns_field="vector",
            limit=k, output_fields=[],
            search_params={"metric_type": "IP", "params": search_params(self.kind, k,
                                                                        self.settings)})
        return self._rows(results, k)

    def search_text(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """BM25 matches best first. Milvus Lite reports BM25 as a negated distance."""
        k = min(k, self.size)
        if k <= 0 or not query.strip():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        results = self.client.search(self.name, data=[query], anns_field="sparse", limit=k,
                                     output_fields=[], search_params={"metric_type": "BM25"})
        rows, scores = self._rows(results, k)
        scores = np.abs(scores[0])
        keep = (rows[0] >= 0) & (scores > 0)
        return rows[0][keep], scores[keep]

    def text_index(self) -> MilvusText | None:
        return MilvusText(self) if self.full_text else None


class MilvusText:
    """The TextIndex view of a collection that does its own BM25."""

    def __init__(self, index: MilvusIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search_text(query, k)
