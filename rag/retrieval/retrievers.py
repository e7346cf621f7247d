"""Dense, sparse (BM25) and hybrid (reciprocal rank fusion) retrievers over one KB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rag.core.protocols import Embedder, Retriever
from rag.core.types import Hit

if TYPE_CHECKING:  # the storage layer builds snapshots from these indexes
    from rag.storage.kb import Snapshot


def _hits(snap: Snapshot, rows: np.ndarray, scores: np.ndarray, field: str) -> list[Hit]:
    """Rows of ``snap``'s indexes mapped through ``snap``'s own ids and store, never another's."""
    pairs = [(int(r), float(s)) for r, s in zip(rows, scores, strict=True) if 0 <= r < len(snap)]
    chunks = snap.store.chunks_by_id([snap.ids[r] for r, _ in pairs])
    hits = []
    for rank, (row, score) in enumerate(pairs, start=1):
        cid = snap.ids[row]
        if cid in chunks:  # a concurrent publish may have collected it; skip, never crash
            hit = Hit(chunks[cid], cid, score, ranks={field: rank})
            setattr(hit, field, score)
            hits.append(hit)
    return hits


class DenseRetriever:
    """Over one snapshot: make a new retriever (cheap) to see a newer publish."""

    def __init__(self, snap: Snapshot, embedder: Embedder) -> None:
        self.snap, self.embedder = snap, embedder

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.retrieve_vector(self.embedder.embed_query(query), k)

    def retrieve_vector(self, vector: np.ndarray, k: int) -> list[Hit]:
        rows, scores = self.snap.dense.search(vector[None, :], k)
        return _hits(self.snap, rows[0], scores[0], "dense")


class Bm25Retriever:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def retrieve(self, query: str, k: int) -> list[Hit]:
        rows, scores = self.snap.sparse.search(query, k)
        return _hits(self.snap, rows, scores, "bm25")


def rrf(rankings: Sequence[list[Hit]], k: int, rrf_k: int,
        weights: Sequence[float] | None = None) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = sum weight/(rrf_k + rank), keeping every
    retriever's scores. Weights are relative, scaled to average 1: equal ones are plain RRF."""
    weights = weights or [1.0] * len(rankings)
    scale = len(rankings) / (sum(weights) or 1.0)
    merged: dict[str, Hit] = {}
    for hits, weight in zip(rankings, [w * scale for w in weights], strict=True):
        for rank, hit in enumerate(hits, start=1):
            into = merged.setdefault(hit.chunk_id, Hit(hit.chunk, hit.chunk_id, 0.0))
            into.score += weight / (rrf_k + rank)
            into.dense = hit.dense if hit.dense is not None else into.dense
            into.bm25 = hit.bm25 if hit.bm25 is not None else into.bm25
            into.ranks.update(hit.ranks)
    fused = sorted(merged.values(), key=lambda h: -h.score)[:k]
    for hit in fused:
        hit.fused = hit.score
    return fused


class HybridRetriever:
    """Dense and BM25 lists fused by rank; ``weights`` lean the fusion towards the list that
    measured better for the embedder in use (RetrievalSettings.dense_weight)."""

    def __init__(self, retrievers: Sequence[Retriever], candidates: int, rrf_k: int,
                 weights: Sequence[float] | None = None) -> None:
        self.retrievers, self.candidates, self.rrf_k = retrievers, candidates, rrf_k
        self.weights = weights

    def retrieve(self, query: str, k: int) -> list[Hit]:
        rankings = [r.retrieve(query, max(k, self.candidates)) for r in self.retrievers]
        return rrf(rankings, k, self.rrf_k, self.weights)
