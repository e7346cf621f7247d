"""Writes and opens one snapshot's derived indexes (the id list, then FAISS + BM25, or a Milvus
collection with its own BM25) from a store's current chunks.

Large KBs build in a child process (``python -m rag.storage.snapshot_build``): at 100k chunks the BM25
build holds the GIL for seconds, and searches served by the same process (the chat app during a
removal or an indexing job) must not wait for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rag.core.children import child_env
from rag.core.config import IndexSettings
from rag.core.protocols import TextIndex, VectorIndex
from rag.storage import milvus_index
from rag.storage.bm25_index import Bm25Index
from rag.storage.faiss_index import FaissIndex, build_index, save_index
from rag.storage.store import ChunkStore

OUT_OF_PROCESS_CHUNKS = 20_000  # below this the whole build takes well under a second


def write_indexes(store: ChunkStore, folder: Path, dim: int, index: IndexSettings,
                  live: Path | None) -> None:
    """``live``: the folder of the snapshot this one replaces (a Milvus server collection goes
    on from it, adding and deleting only the difference)."""
    full_text = False
    if index.backend == "milvus":
        ids, texts = store.current_texts()
        name = milvus_index.collection_name(folder.parent.parent, folder.name.removeprefix(".tmp-"))
        full_text = milvus_index.write(folder, name, ids, texts,
                                       lambda wanted: store.vectors_of(wanted, dim), dim, index,
                                       live)
    else:
        ids, texts, vectors = store.current_rows(dim)
        save_index(build_index(vectors, dim, index), folder / "faiss.index")
    if not full_text:
        Bm25Index.build(texts).save(folder / "bm25")
    (folder / "ids.json").write_text(json.dumps(ids))


def read_indexes(folder: Path, ids: list[str],
                 index: IndexSettings) -> tuple[VectorIndex, TextIndex]:
    """The snapshot's dense and keyword indexes, by what the folder holds (not by the config:
    a snapshot stays readable until the next publish replaces it)."""
    if milvus_index.info(folder) is None:
        return (FaissIndex.load(folder / "faiss.index", index),
                Bm25Index.load(folder / "bm25", len(ids)))
    dense = milvus_index.MilvusIndex(folder, ids, index)
    return dense, dense.text_index() or Bm25Index.load(folder / "bm25", len(ids))


def backend_of(folder: Path) -> tuple[str, str]:
    """(backend, Milvus URI) a snapshot folder was written with."""
    recorded = milvus_index.info(folder)
    return ("faiss", "") if recorded is None else ("milvus", str(recorded.get("uri", "")))


def build_snapshot(store: ChunkStore, folder: Path, dim: int, index: IndexSettings,
                   live: Path | None) -> None:
    """Fill ``folder``; raises RuntimeError or OSError with the reason when it cannot."""
    if store.stats()["chunks"] < OUT_OF_PROCESS_CHUNKS:
        write_indexes(store, folder, dim, index, live)
        return
    done = subprocess.run(  # the settings (a Milvus token) go through stdin, not argv
        [sys.executable, "-m", "rag.storage.snapshot_build", str(store.path), str(folder), str(dim),
         str(live or "")],
        input=index.model_dump_json(), capture_output=True, text=True, env=child_env(),
        check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(lines[-1])


if __name__ == "__main__":
    store_path, out, dim_text, live_path = sys.argv[1:5]
    settings_json = sys.stdin.read()
    child_store = ChunkStore(Path(store_path), readonly=True)
    try:
        write_indexes(child_store, Path(out), int(dim_text),
                      IndexSettings.model_validate_json(settings_json),
                      Path(live_path) if live_path else None)
    finally:
        child_store.close()
