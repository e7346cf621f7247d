"""Writes one snapshot's derived indexes (FAISS, BM25, the id list) from a store's current chunks.

Large KBs build in a child process (``python -m rag.storage.snapshot_build``): at 100k chunks the BM25
build holds the GIL for seconds, and searches served by the same process (the chat app during a
removal or an indexing job) must not wait for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rag.children import child_env
from rag.config import IndexSettings
from rag.retrieval.bm25_index import Bm25Index
from rag.retrieval.faiss_index import build_index, save_index
from rag.storage.store import ChunkStore

OUT_OF_PROCESS_CHUNKS = 20_000  # below this the whole build takes well under a second


def write_indexes(store: ChunkStore, folder: Path, dim: int, index: IndexSettings) -> None:
    ids, texts, vectors = store.current_rows(dim)
    save_index(build_index(vectors, dim, index), folder / "faiss.index")
    Bm25Index.build(texts).save(folder / "bm25")
    (folder / "ids.json").write_text(json.dumps(ids))


def build_snapshot(store: ChunkStore, folder: Path, dim: int, index: IndexSettings) -> None:
    """Fill ``folder``; raises RuntimeError or OSError with the reason when it cannot."""
    if store.stats()["chunks"] < OUT_OF_PROCESS_CHUNKS:
        write_indexes(store, folder, dim, index)
        return
    done = subprocess.run(
        [sys.executable, "-m", "rag.storage.snapshot_build", str(store.path), str(folder), str(dim),
         index.model_dump_json()], capture_output=True, text=True, env=child_env(), check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(lines[-1])


if __name__ == "__main__":
    store_path, out, dim_text, settings_json = sys.argv[1:5]
    child_store = ChunkStore(Path(store_path), readonly=True)
    try:
        write_indexes(child_store, Path(out), int(dim_text),
                      IndexSettings.model_validate_json(settings_json))
    finally:
        child_store.close()
