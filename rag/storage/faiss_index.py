"""FAISS inner-product indexes (flat, IVF, HNSW), moved to the GPU when faiss-gpu and CUDA exist."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from rag.core.config import IndexSettings

log = logging.getLogger(__name__)


def gpu_count() -> int:
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def build_index(vectors: np.ndarray, dim: int, settings: IndexSettings):  # noqa: ANN201
    """A CPU index over ``vectors`` (row i = snapshot position i), trained when the kind needs it."""
    import faiss

    n = len(vectors)
    kind = settings.kind
    if kind == "ivf" and n < 1000:
        log.info("IVF needs training data; %d vectors is too few, using a flat index", n)
        kind = "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, settings.hnsw_m * 2)
    else:
        nlist = settings.nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        # 64 training points per list is within FAISS's advice (30-256) and keeps training fast.
        sample = vectors if n <= nlist * 64 else vectors[
            np.random.default_rng(0).choice(n, nlist * 64, replace=False)
        ]
        index.train(sample)
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def tune(index, settings: IndexSettings):  # noqa: ANN001, ANN201
    """Apply query-time knobs, then move to the GPU when available and allowed."""
    import faiss

    if hasattr(index, "nprobe"):
        index.nprobe = settings.nprobe
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = settings.ef_search
    if settings.gpu == "auto" and gpu_count() > 0 and not hasattr(index, "hnsw"):
        # HNSW has no GPU implementation in FAISS; flat and IVF do.
        index = faiss.index_cpu_to_all_gpus(index)
        log.info("FAISS index moved to %d GPU(s)", gpu_count())
    return index


def save_index(index, path: Path) -> None:  # noqa: ANN001
    import faiss

    faiss.write_index(index, str(path))


class FaissIndex:
    """A snapshot's dense index in this process's memory (the VectorIndex of the faiss backend)."""

    def __init__(self, index) -> None:  # noqa: ANN001
        self.index = index

    @classmethod
    def load(cls, path: Path, settings: IndexSettings) -> FaissIndex:
        import faiss

        return cls(tune(faiss.read_index(str(path)), settings))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search(self.index, queries, k)

    def close(self) -> None:
        """Nothing to release: the index is this process's memory."""


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(rows, scores) for each query; rows of -1 (not enough vectors) are dropped by callers."""
    k = min(k, index.ntotal)
    if k <= 0:
        empty = np.zeros((len(queries), 0))
        return empty.astype(np.int64), empty.astype(np.float32)
    scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return rows, scores
