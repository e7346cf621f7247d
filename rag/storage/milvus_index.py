"""The Milvus backend: a KB's vectors, texts and BM25 in a Milvus collection.

Rows are keyed by chunk id and stamped with the generation of the publish that added them
(``born``). A snapshot of generation G searches ``born <= G`` and maps chunk ids to its own
positions, so a publish adds only the chunks the live snapshot lacks (upserts, or a bulk import of
parquet files when there are many) and deletes the ones it dropped after the KB's ``CURRENT``
pointer has moved. A killed publish leaves rows born after the live generation, which no reader
sees and the next publish deletes first; deletes a killed job did not get to are redone from the
list the snapshot keeps. A server keeps one collection per KB while its layout (dimension, index,
BM25) stays the same. Milvus Lite serves one process at a time (milvus-lite#264), so it gets a new
file per snapshot, filled from scratch: a reader in another process never blocks a publish. Index
type and search parameters are pinned from the config, never AUTOINDEX, so Lite and servers agree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rag.core.config import IndexSettings
from rag.core.errors import MilvusUnavailable
from rag.core.redaction import redact
from rag.storage.milvus_connection import Connection, close_client

log = logging.getLogger(__name__)
INFO = "milvus.json"  # in the snapshot folder: where its collection lives, its generation
PENDING = "milvus-delete.json"  # in the snapshot folder: chunk ids to delete once it is live
LITE = "milvus.db"
SCHEMA = 2  # 1: row = snapshot position, one collection per snapshot
INSERT_BATCH = 2000
DELETE_BATCH = 1000
IMPORT_FILE_ROWS = 200_000  # rows per parquet file of a bulk import
IMPORT_TIMEOUT_S = 3600
ID_BYTES = 128
# Searches do not wait for the newest writes (Strong made every server search wait for the next
# time tick: 200 ms at p50 on SciFact); a publish waits until its rows show at this level
# instead, and rows deleted after a switch are skipped by the snapshot's id map anyway.
READS = "Bounded"
TEXT_BYTES = 65_535  # Milvus VARCHAR limit
GPU_INDEXES = {"GPU_IVF_FLAT", "GPU_CAGRA"}


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


def _uri(folder: Path, settings: IndexSettings) -> str:
    return settings.milvus_uri or str(folder / LITE)


def layout(settings: IndexSettings, dim: int) -> str:
    """What a collection's schema and index depend on: a change means a new collection."""
    kind = index_type(settings)
    return json.dumps([SCHEMA, dim, kind, build_params(kind, 0, settings) | {"nlist": settings.nlist},
                       settings.milvus_bm25, settings.milvus_shards])


def info(folder: Path) -> dict[str, object] | None:
    try:
        return json.loads((folder / INFO).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _record(folder: Path, **fields: object) -> None:
    (folder / INFO).write_text(json.dumps(fields))


def write(folder: Path, name: str, ids: Sequence[str], texts: Sequence[str],
          vectors_of: Callable[[Sequence[str]], np.ndarray], dim: int, settings: IndexSettings,
          live: Path | None) -> bool:
    """Bring the collection to the snapshot's chunks ``ids`` (``live``: the folder of the snapshot
    being replaced); True when the collection also does BM25 (else the caller builds the local
    index). ``milvus.json`` is written first, so a killed publish's new collection is found and
    dropped by the next one."""
    before = info(live) if live is not None else None
    key = layout(settings, dim)
    reuse = bool(before and settings.milvus_uri and before.get("uri") == settings.milvus_uri
                 and before.get("layout") == key)
    generation = int(before.get("generation", 0)) + 1 if before else 1  # type: ignore[call-overload]
    collection = str(before["collection"]) if reuse and before else name
    record = {"uri": settings.milvus_uri, "collection": collection, "layout": key,
              "generation": generation}
    _record(folder, **record)
    conn = Connection(_uri(folder, settings), settings.milvus_token)
    try:
        if reuse and before and live:
            full_text, kind = bool(before.get("bm25")), str(before["index"])
            _forget(conn, collection, generation - 1, live)
            known = set(json.loads((live / "ids.json").read_text()))
            new = [i for i, chunk_id in enumerate(ids) if chunk_id not in known]
            removed = sorted(known.difference(ids))
        else:
            kind = index_type(settings)
            full_text = _create_with_bm25(conn, collection, dim, kind, len(ids), settings)
            new, removed = list(range(len(ids))), []
        rows = ([ids[i] for i in new], [texts[i] for i in new])
        if settings.milvus_bulk_store and len(new) >= settings.milvus_bulk_rows and not conn.lite:
            bulk_import(conn, collection, *rows, vectors_of, generation, settings.milvus_bulk_store)
        else:
            _upsert(conn, collection, *rows, vectors_of, generation, fresh=not reuse)
        conn.client.flush(collection)
        _await_rows(conn, collection, generation, len(new))
    finally:
        conn.close()
    if removed:
        (folder / PENDING).write_text(json.dumps(removed))
    _record(folder, **record, bm25=full_text, index=kind)
    return full_text


def _create_with_bm25(conn: Connection, name: str, dim: int, kind: str, n: int,
                      settings: IndexSettings) -> bool:
    # Milvus Lite's analyzer does not stem: on SciFact its BM25 lost 0.024 hybrid nDCG@10 to
    # the local (stemmed) index (bench/results/index_backends.json), so auto keeps bm25s.
    full_text = settings.milvus_bm25 == "milvus" or (settings.milvus_bm25 == "auto"
                                                     and not conn.lite)
    try:
        _create(conn, name, dim, kind, n, settings, full_text)
    except Exception as exc:
        if not full_text or settings.milvus_bm25 == "milvus":
            raise MilvusUnavailable(redact(f"Milvus cannot create the collection: {exc}")) from None
        log.warning("Milvus has no full-text BM25 here (%s); using the local BM25 index", exc)
        conn.client.drop_collection(name)
        _create(conn, name, dim, kind, n, settings, False)
        return False
    return full_text


def _create(conn: Connection, name: str, dim: int, kind: str, n: int,
            settings: IndexSettings, full_text: bool) -> None:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, max_length=ID_BYTES, is_primary=True)
    schema.add_field("born", DataType.INT64)
    # Servers analyse with stemming and stop words like the local index; Lite has no stemmer.
    analyzer = {} if conn.lite else {"analyzer_params": {"type": "english"}}
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES,
                     **({"enable_analyzer": True, **analyzer} if full_text else {}))
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


def _batches(ids: Sequence[str], texts: Sequence[str], vectors_of: Callable[
        [Sequence[str]], np.ndarray], size: int) -> Iterator[tuple[Sequence[str], Sequence[str],
                                                                  np.ndarray]]:
    """The rows to add, a batch at a time: vectors are read from the store as they are sent."""
    for start in range(0, len(ids), size):
        part = ids[start:start + size]
        yield part, [_truncate(t) for t in texts[start:start + size]], vectors_of(part)


def _upsert(conn: Connection, name: str, ids: Sequence[str], texts: Sequence[str],
            vectors_of: Callable[[Sequence[str]], np.ndarray], generation: int,
            fresh: bool) -> None:
    """Small updates: upserts (a chunk id already there is replaced, never duplicated); a new
    collection is filled with plain inserts."""
    send = conn.client.insert if fresh else conn.client.upsert
    for part, part_texts, vectors in _batches(ids, texts, vectors_of, INSERT_BATCH):
        send(name, [{"id": c, "born": generation, "text": t, "vector": v.tolist()}
                    for c, t, v in zip(part, part_texts, vectors, strict=True)])


def bulk_import(conn: Connection, name: str, ids: Sequence[str], texts: Sequence[str],
                vectors_of: Callable[[Sequence[str]], np.ndarray], generation: int,
                store: str) -> None:
    """Large loads: parquet files written where the server reads (its object store bucket, or a
    folder a local-storage server sees), imported by the server (Milvus's bulk import), then
    removed. Returns when the rows are searchable."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs
    from pymilvus import connections, utility

    try:  # pyarrow repeats the whole URI, secret included, in its errors
        filesystem, root = pafs.FileSystem.from_uri(store if "://" in store
                                                    else str(Path(store).resolve()))
        job = f"{root.rstrip('/')}/{name}-{generation}-{uuid.uuid4().hex[:8]}"
        filesystem.create_dir(job, recursive=True)  # an unreachable store fails here
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise MilvusUnavailable(redact(f"index.milvus_bulk_store is unusable: {exc}")) from None
    local = isinstance(filesystem, pafs.LocalFileSystem)
    files: list[str] = []
    try:
        for part, part_texts, vectors in _batches(ids, texts, vectors_of, IMPORT_FILE_ROWS):
            path = f"{job}/part-{len(files):05}.parquet"
            table = pa.table({
                "id": pa.array(part, pa.string()), "born": pa.array([generation] * len(part),
                                                                    pa.int64()),
                "text": pa.array(part_texts, pa.string()),
                "vector": pa.array(list(vectors.astype(np.float32)), pa.list_(pa.float32()))})
            with filesystem.open_output_stream(path) as out:
                pq.write_table(table, out)
            # The server resolves paths in its own bucket (or, with local storage, on its disk).
            files.append(path if local else path.split("/", 1)[1])
        # The import RPC that every server version (2.3 to 2.6) takes is in pymilvus's ORM
        # helpers, which warn that 3.1 drops them (pyproject pins pymilvus below 3.1).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            alias = f"rag-import-{uuid.uuid4().hex[:8]}"
            connections.connect(alias=alias, uri=conn.uri, token=conn.token)
            try:
                for path in files:  # one job per file: the form a 2.3 server also accepts
                    task = utility.do_bulk_insert(name, files=[path], using=alias)
                    _await_import(utility, alias, task, path)
            finally:
                connections.disconnect(alias)
    finally:
        try:
            filesystem.delete_dir(job)
        except OSError as exc:  # leftover files only cost space in the store
            log.warning("could not remove the bulk-import files in %s: %s", job, exc)


def _await_import(utility: object, alias: str, task: int, path: str) -> None:
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    while time.monotonic() < deadline:
        state = utility.get_bulk_insert_state(task, using=alias)  # type: ignore[attr-defined]
        if state.state_name == "Completed":
            return
        if state.state_name == "Failed":
            raise RuntimeError(f"Milvus bulk import of {path} failed: {state.failed_reason}")
        time.sleep(1)
    raise RuntimeError(f"Milvus bulk import of {path} did not finish in {IMPORT_TIMEOUT_S} s")


def _await_rows(conn: Connection, name: str, generation: int, expected: int) -> None:
    """Return once the new rows are searchable at the readers' consistency level (an import
    also waits for its segments to be indexed and loaded), so the snapshot that needs them goes
    live only then."""
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    while time.monotonic() < deadline:
        found = conn.client.query(name, filter=f"born == {generation}",
                                  output_fields=["count(*)"], consistency_level=READS)
        if int(found[0]["count(*)"]) >= expected:
            return
        time.sleep(0.5)
    raise RuntimeError(f"new rows of Milvus collection {name} were not searchable after "
                       f"{IMPORT_TIMEOUT_S} s")


def _delete(conn: Connection, name: str, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), DELETE_BATCH):
        conn.client.delete(name, ids=list(ids[start:start + DELETE_BATCH]))


def _forget(conn: Connection, name: str, generation: int, live: Path) -> None:
    """Before adding rows: delete what killed publishes left (rows born after the live snapshot,
    and the live snapshot's dropped chunks if their deletes did not run)."""
    conn.client.delete(name, filter=f"born > {generation}")
    pending = live / PENDING
    if pending.exists():
        _delete(conn, name, json.loads(pending.read_text()))


def finish(live: Path, settings: IndexSettings) -> None:
    """After ``CURRENT`` moved to ``live``: delete the chunks it dropped. A failure only leaves
    rows no search returns (see MilvusIndex._rows), deleted by the next publish."""
    pending, recorded = live / PENDING, info(live)
    if not pending.exists() or not recorded:
        return
    try:
        conn = Connection(str(recorded["uri"]), settings.milvus_token)
        try:
            _delete(conn, str(recorded["collection"]), json.loads(pending.read_text()))
        finally:
            conn.close()
        pending.unlink()
    except Exception as exc:  # the snapshot is live; the next publish deletes them
        log.warning("could not delete removed chunks from Milvus: %s", exc)


def drop(folder: Path, live: Path, settings: IndexSettings) -> None:
    """Drop a replaced snapshot's server collection unless the live snapshot goes on with it
    (Lite's goes with its folder)."""
    recorded, current = info(folder), info(live) or {}
    if not recorded or not recorded.get("uri"):
        return
    if (recorded["uri"], recorded["collection"]) == (current.get("uri"), current.get("collection")):
        return
    try:
        conn = Connection(str(recorded["uri"]), settings.milvus_token)
        try:
            conn.client.drop_collection(str(recorded["collection"]))
        finally:
            conn.close()
    except Exception as exc:  # the new snapshot is live; a leftover collection only costs space
        log.warning("could not drop Milvus collection %s: %s", recorded.get("collection"), exc)


class MilvusIndex:
    """One snapshot's view of its collection: dense search (VectorIndex) and, via
    ``text_index``, BM25. Hits are returned as positions in the snapshot's id list."""

    def __init__(self, folder: Path, ids: Sequence[str], settings: IndexSettings) -> None:
        recorded = info(folder) or {}
        self.name = str(recorded.get("collection", ""))
        self.full_text = bool(recorded.get("bm25"))
        self.kind = str(recorded.get("index", index_type(settings)))
        # Snapshots written before generations (row = position) search the whole collection.
        generation = recorded.get("generation")
        self.filter = "" if generation is None else f"born <= {int(generation)}"  # type: ignore[call-overload]
        self.ids, self.settings = ids, settings
        self._positions: dict[str, int] | None = None
        conn = Connection(str(recorded.get("uri") or folder / LITE), settings.milvus_token)
        self.client = conn.client
        self._finalizer = weakref.finalize(self, close_client, conn.client,
                                           conn.uri if conn.lite else None)
        try:
            self.client.load_collection(self.name)
        except Exception as exc:
            self.close()
            raise MilvusUnavailable(f"cannot load Milvus collection {self.name}: {exc}") from None

    def close(self) -> None:
        self._finalizer()

    def __len__(self) -> int:
        return len(self.ids)

    def _position(self, key: object) -> int | None:
        if isinstance(key, int):
            return key
        if self._positions is None:
            self._positions = {chunk_id: i for i, chunk_id in enumerate(self.ids)}
        return self._positions.get(str(key))

    def _rows(self, results: list, k: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
        """Hits as snapshot positions. A chunk this snapshot dropped whose delete has not run yet
        is skipped: it can only shorten a result list, never put a foreign passage in it."""
        rows = np.full((len(results), k), -1, dtype=np.int64)
        scores = np.zeros((len(results), k), dtype=np.float32)
        for q, hits in enumerate(results):
            j = 0
            for hit in hits:
                position = self._position(hit.get("id"))
                if position is not None and j < k:
                    rows[q, j], scores[q, j] = position, float(hit["distance"])
                    j += 1
        return rows, scores

    def _search(self, data: list, field: str, k: int,  # type: ignore[type-arg]
                params: dict[str, object]) -> list:  # type: ignore[type-arg]
        return self.client.search(self.name, data=data, anns_field=field, limit=k,
                                  filter=self.filter, output_fields=[], search_params=params,
                                  consistency_level=READS)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if k <= 0:
            return self._rows([[] for _ in queries], 0)
        results = self._search(np.asarray(queries, dtype=np.float32).tolist(), "vector", k, {
            "metric_type": "IP", "params": search_params(self.kind, k, self.settings)})
        return self._rows(results, k)

    def search_text(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """BM25 matches best first. Milvus Lite reports BM25 as a negated distance."""
        k = min(k, len(self))
        if k <= 0 or not query.strip():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows, scores = self._rows(self._search([query], "sparse", k, {"metric_type": "BM25"}), k)
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
