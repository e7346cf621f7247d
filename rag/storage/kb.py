"""A knowledge base folder: SQLite truth plus immutable snapshots of the derived indexes.

Publishing writes a new snapshot folder, fsyncs it, then atomically replaces the ``CURRENT``
pointer; a job killed at any moment leaves the previous snapshot live and consistent. Each snapshot
names the SQLite store that resolves its ids, so a rebuild fills a new store beside the old one and
the same single rename switches both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.core.config import Settings
from rag.core.errors import KBError
from rag.core.protocols import Embedder, TextIndex, VectorIndex
from rag.storage import milvus_index
from rag.storage.snapshot_build import backend_of, build_snapshot, read_indexes
from rag.storage.store import ChunkStore

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # whole names only (fullmatch)
STORE = "kb.sqlite"
# bf16 on a CPU: one text alone vs in a batch measured >= 0.9969 (MiniLM, 60 SciFact abstracts);
# another model is far below. Prefix families are checked by the signature, not by this.
REPRODUCE_COSINE = 0.99
# Vectors of one model written in these number formats may share a KB (bf16's cosine to fp32's
# measured >= 0.9965, SciFact nDCG@10 within 0.003). int8 (ONNX Runtime) may not: its own KB
# scores within 0.005 of fp32's, but int8 queries over fp32 vectors lost 0.0053 dense nDCG@10
# (bench/results/embedding-int8/). Between two mixable formats a stored vector need only be
# reproduced to MIXED_COSINE.
MIXABLE_VECTORS = frozenset({"float32", "bfloat16", "float16"})
MIXED_COSINE = 0.97


@dataclass
class Snapshot:
    """One published state: indexes whose row i is ``ids[i]``, and the store that resolves ids.
    A search holds one Snapshot from start to end, so a publish in between cannot mix rows."""

    id: str
    ids: list[str]
    dense: VectorIndex
    sparse: TextIndex
    store: ChunkStore

    def __len__(self) -> int:
        return len(self.ids)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KnowledgeBase:
    def __init__(self, name: str, settings: Settings) -> None:
        if not NAME.fullmatch(name):
            raise KBError(
                f"invalid knowledge base name {name!r}: use letters, digits, '.', '_' or '-'"
            )
        self.name = name
        self.settings = settings
        self.path = settings.kb_root / name
        self._store: ChunkStore | None = None
        self._snapshot: Snapshot | None = None
        self._loading = threading.Lock()
        self._writing = False
        self._rebuilding = False
        self._verified: tuple[Path, Embedder] | None = None
        self._store_of: tuple[str | None, str] = (None, STORE)  # (snapshot id, its store file)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return _is_kb(self.path)

    def _live_store_name(self) -> str:
        """The store file of the live snapshot (``kb.sqlite`` before the first publish); read
        once per snapshot."""
        current = self.current_id()
        if current != self._store_of[0]:
            try:
                name = ((self.path / "snapshots" / current / "store").read_text().strip()
                        if current else STORE)
            except FileNotFoundError:  # replaced meanwhile: ask again next time
                return STORE
            self._store_of = (current, name or STORE)
        return self._store_of[1]

    @property
    def store(self) -> ChunkStore:
        """The live store; outside a writer it follows a rebuild published by another process."""
        if self._store is not None and not self._writing:
            if self._store.path.name != self._live_store_name():
                self._store = None  # the old connection stays with any snapshot still using it
        if self._store is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._store = ChunkStore(self.path / self._live_store_name())
        return self._store

    def require(self) -> None:
        if not self.exists:
            known = ", ".join(list_kbs(self.settings)) or "none yet"
            raise KBError(
                f"knowledge base {self.name!r} does not exist (known: {known}); "
                f"create it with: rag index PATH --kb {self.name}"
            )

    def close(self) -> None:
        if self._snapshot is not None:  # a Milvus Lite folder is locked while it is open
            self._snapshot.dense.close()
            self._snapshot = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def delete(self) -> None:
        """The KB and everything in it, gone: under the writer lock, so never while a job is
        indexing it (that is a KBError)."""
        self.require()
        with self.writer():
            self.close()
            shutil.rmtree(self.path)

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """One indexing job per KB at a time (an OS lock, released even on kill -9)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise KBError(f"another job is indexing knowledge base {self.name!r}") from None
            self._drop_unused_stores()
            self._writing = True  # the store stays the one this job writes, even a new one
            try:
                yield
            finally:
                self._writing = False
                if self._rebuilding:
                    self.abort_rebuild()

    def indexing(self) -> bool:
        """Whether a job holds the writer lock now (without taking it)."""
        try:
            with open(self.path / "lock") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # no lock file: never indexed
            return False
        return False  # closing the file released the shared lock

    def changed_at(self) -> float:
        """When the live snapshot was last published (0 if never)."""
        try:
            return (self.path / "CURRENT").stat().st_mtime
        except OSError:
            return 0.0

    def _drop_unused_stores(self) -> None:
        """Stores of killed rebuilds and of replaced versions (only under the writer lock)."""
        live = self.store.path.name
        for path in self.path.glob("kb*.sqlite*"):
            if path.name.removesuffix("-wal").removesuffix("-shm").removesuffix("-journal") != live:
                path.unlink(missing_ok=True)

    def begin_rebuild(self, embedder: Embedder) -> None:
        """Index into a new, empty store beside the live one; ``publish`` swaps it in."""
        self._rebuilding = True
        self._store = ChunkStore(self.path / f"kb-{uuid.uuid4().hex[:12]}.sqlite")
        with self._store.db:
            self._store.set_meta("signature", json.dumps(self.signature(embedder)))
            self._store.set_meta("dirty", "1")

    def abort_rebuild(self) -> None:
        """Forget the new store of an unfinished rebuild; the live KB is untouched."""
        self._rebuilding = False
        if self._store is not None and self._store.path.name != self._live_store_name():
            self._store.close()
            for path in self.path.glob(self._store.path.name + "*"):
                path.unlink(missing_ok=True)
            self._store = None

    # -- model compatibility ---------------------------------------------------------------
    def signature(self, embedder: Embedder) -> dict[str, object]:
        c = self.settings.chunking
        return {
            "embedder": embedder.name,
            "family": getattr(embedder, "family", None),
            "dim": embedder.dim,
            "vectors": getattr(embedder, "dtype", None) or None,  # known once the model loaded
            "normalized": True,
            "max_tokens": c.max_tokens,
            "overlap_tokens": c.overlap_tokens,
            "prepend_title": c.prepend_title,
        }

    def recorded_signature(self) -> dict[str, object] | None:
        raw = self.store.get_meta("signature") if self.exists else None
        return json.loads(raw) if raw else None

    def check_compatible(self, embedder: Embedder) -> None:
        """Refuse to mix vectors of different models or chunkings in one KB. Names can lie (a
        folder with new weights, another prefix family), so once per store the embedder must
        also reproduce one stored vector."""
        recorded = self.recorded_signature()
        if recorded is None:
            return
        wanted = self.signature(embedder)
        diff = [f"{k}: KB has {recorded.get(k)!r}, config has {v!r}"
                for k, v in wanted.items() if k in recorded and recorded[k] != v
                and k != "vectors"]
        # A KB from before formats were recorded holds fp32 or bf16 vectors.
        had, has = recorded.get("vectors") or "float32", wanted["vectors"]
        mixed = has is not None and had != has
        if mixed and not {had, has} <= MIXABLE_VECTORS:
            diff.append(f"vectors: KB has {had!r}, config has {has!r} (these formats are not "
                        "measured safe to mix: set embedder.dtype to the KB's)")
        if not diff and self._verified != (self.store.path, embedder):
            sample = self.store.sample_vector()
            if sample is not None:
                again = embedder.embed_documents([sample[0]])[0]
                cosine = float(np.dot(again, sample[1]))
                if cosine < (MIXED_COSINE if mixed else REPRODUCE_COSINE):
                    diff.append(f"the configured embedder does not reproduce the KB's vectors "
                                f"(cosine {cosine:.3f}: other weights or query/passage prefixes)")
            self._verified = (self.store.path, embedder)
        if diff:
            raise KBError(
                f"knowledge base {self.name!r} was built with other settings ({'; '.join(diff)}); "
                "re-index with --rebuild, or configure the KB's model"
            )

    def record_signature(self, embedder: Embedder) -> None:
        if self.recorded_signature() is None:
            with self.store.db:
                self.store.set_meta("signature", json.dumps(self.signature(embedder)))

    # -- snapshots -------------------------------------------------------------------------
    def current_id(self) -> str | None:
        try:
            return (self.path / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    @property
    def needs_publish(self) -> bool:
        """New chunks, no index yet, or an index on another backend than the config's (so
        `rag index` moves a KB between FAISS and Milvus without embedding again)."""
        current = self.current_id()
        if self.store.get_meta("dirty") == "1" or current is None:
            return True
        index = self.settings.index
        wanted = (index.backend, index.milvus_uri if index.backend == "milvus" else "")
        return backend_of(self.path / "snapshots" / current) != wanted

    def publish(self, dim: int) -> str:
        """Build indexes from the store's current chunks, then swap them in atomically."""
        snaps = self.path / "snapshots"
        snap_id = uuid.uuid4().hex[:12]
        tmp = snaps / f".tmp-{snap_id}"
        try:
            snaps.mkdir(exist_ok=True)
            tmp.mkdir()
            live = self.current_id()  # a rebuild's new vectors never go on from the live ones
            build_snapshot(self.store, tmp, dim, self.settings.index,
                           snaps / live if live and not self._rebuilding else None)
            (tmp / "store").write_text(self.store.path.name)
            _fsync_tree(tmp)
        except (OSError, RuntimeError) as exc:  # disk full, read-only: FAISS raises RuntimeError
            shutil.rmtree(tmp, ignore_errors=True)
            raise KBError(f"cannot write the index of knowledge base {self.name!r}: "
                          f"{str(exc).strip().splitlines()[-1][:300]}; the previous index stays "
                          "live") from None
        os.rename(tmp, snaps / snap_id)
        pointer = self.path / "CURRENT.tmp"
        with open(pointer, "w") as handle:
            handle.write(snap_id)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, self.path / "CURRENT")
        _fsync_dir(self.path)
        self._rebuilding = False
        with self.store.db:
            self.store.set_meta("dirty", "0")
        self.store.collect_garbage()
        for old in snaps.iterdir():
            if old.name != snap_id:
                milvus_index.drop(old, snaps / snap_id, self.settings.index)
                shutil.rmtree(old, ignore_errors=True)
        milvus_index.finish(snaps / snap_id, self.settings.index)
        self._drop_unused_stores()
        self._snapshot = None
        return snap_id

    def snapshot(self) -> Snapshot:
        """The live snapshot, reloaded when another process has published a newer one. While
        one thread loads a newer snapshot, others keep answering from the one they have: a
        publish never makes searches wait for a load."""
        self.require()
        current = self.current_id()
        if current is None:
            raise KBError(f"knowledge base {self.name!r} has no index yet: run rag index")
        if self._snapshot is not None and self._snapshot.id == current:
            return self._snapshot
        if not self._loading.acquire(blocking=self._snapshot is None):
            return self._snapshot  # type: ignore[return-value]
        try:
            return self._load(current)
        finally:
            self._loading.release()

    def _load(self, current: str) -> Snapshot:
        for _ in range(3):  # a concurrent publish may remove the folder we were about to read
            if self._snapshot is not None and self._snapshot.id == current:
                return self._snapshot
            folder = self.path / "snapshots" / current
            try:
                ids = json.loads((folder / "ids.json").read_text())
                dense, sparse = read_indexes(folder, ids, self.settings.index)
                self._snapshot = Snapshot(current, ids, dense, sparse, self.store)
            except milvus_index.MilvusUnavailable as exc:
                raise KBError(f"knowledge base {self.name!r}: {exc}") from None
            except (FileNotFoundError, RuntimeError):
                current = self.current_id() or current
        if self._snapshot is None or self._snapshot.id != current:
            raise KBError(f"knowledge base {self.name!r}: snapshot {current} is unreadable")
        return self._snapshot

    def stats(self) -> dict[str, object]:
        self.require()
        sig = self.recorded_signature() or {}
        return {"name": self.name, **self.store.stats(), "embedder": sig.get("embedder"),
                "dim": sig.get("dim"), "vectors": sig.get("vectors"), "snapshot": self.current_id(),
                "updated": (self.path / "CURRENT").stat().st_mtime
                if (self.path / "CURRENT").exists() else None}


def list_kbs(settings: Settings) -> list[str]:
    root = settings.kb_root
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _is_kb(p))


def _is_kb(folder: Path) -> bool:
    return (folder / STORE).is_file() or (folder / "CURRENT").is_file()
