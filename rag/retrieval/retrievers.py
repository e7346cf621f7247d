"""Dense, sparse (BM25) and hybrid retrievers over one KB, and the two ways hybrid search fuses
its lists (score fusion, reciprocal rank fusion)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rag.core.protocols import Embedder, Retriever
from rag.core.types import Hit
from rag.embedding.embedder import bundled_name

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


def _merge(rankings: Sequence[list[Hit]], k: int,
           contributions: Sequence[Sequence[float]]) -> list[Hit]:
    """Hits of several lists as one, each scored by the sum of its contributions, keeping every
    retriever's scores and ranks; the best ``k``."""
    merged: dict[str, Hit] = {}
    for hits, adds in zip(rankings, contributions, strict=True):
        for hit, add in zip(hits, adds, strict=True):
            into = merged.setdefault(hit.chunk_id, Hit(hit.chunk, hit.chunk_id, 0.0))
            into.score += add
            into.dense = hit.dense if hit.dense is not None else into.dense
            into.bm25 = hit.bm25 if hit.bm25 is not None else into.bm25
            into.ranks.update(hit.ranks)
    fused = sorted(merged.values(), key=lambda h: -h.score)[:k]
    for hit in fused:
        hit.fused = hit.score
    return fused


def rrf(rankings: Sequence[list[Hit]], k: int, rrf_k: int,
        weights: Sequence[float] | None = None) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = sum weight/(rrf_k + rank). Weights are
    relative, scaled to average 1: equal ones are plain RRF."""
    weights = weights or [1.0] * len(rankings)
    scale = len(rankings) / (sum(weights) or 1.0)
    return _merge(rankings, k, [[w * scale / (rrf_k + rank) for rank in range(1, len(hits) + 1)]
                                for hits, w in zip(rankings, weights, strict=True)])


def score_fusion(rankings: Sequence[list[Hit]], k: int,
                 weights: Sequence[float] | None = None) -> list[Hit]:
    """Weighted sum of each list's scores divided by its best one (the "theoretical min-max"
    convex combination of Bruch et al., 2023, with both floors at 0: BM25 scores no match 0 and
    a cosine under 0 is none). Unlike rank fusion it keeps margins: a passage that BM25 scores
    far above the rest for a rare exact word ("optimizer", a constant's name) stays ahead of
    passages both lists rank middling. A hit missing from a list gets 0 from it; a list whose
    best score is not above 0 adds nothing."""
    weights = weights or [1.0 / len(rankings)] * len(rankings)
    adds = []
    for hits, weight in zip(rankings, weights, strict=True):
        top = max((h.score for h in hits), default=0.0)
        adds.append([weight * h.score / top if top > 0 else 0.0 for h in hits])
    return _merge(rankings, k, adds)


FusionMethod = Literal["score", "rrf"]


@dataclass(frozen=True)
class Fusion:
    """How hybrid search merges the dense and BM25 lists, with the dense list's weight (BM25's
    is 1 minus it)."""

    method: FusionMethod = "rrf"
    dense_weight: float = 0.5
    rrf_k: int = 60

    def __call__(self, rankings: Sequence[list[Hit]], k: int) -> list[Hit]:
        weights = (self.dense_weight, 1.0 - self.dense_weight)
        if self.method == "score":
            return score_fusion(rankings, k, weights)
        return rrf(rankings, k, self.rrf_k, weights)


# The fusion that measured best on SciFact train (`rag eval fusion`, both methods, dense weights
# 0 to 1) for each bundled embedder; BM25 keeps at least 0.1 so exact names and numbers count.
# Score fusion needs an embedder's cosine scale to be measured; rank fusion (even weights) does
# not, so embedders not measured get that.
MEASURED_FUSION: dict[str, Fusion] = {
    "all-minilm-l6-v2": Fusion("score", 0.5),
    "embeddinggemma-300m": Fusion("rrf", 0.9),
}


def measured_fusion(model: str) -> Fusion:
    """The measured fusion for an embedder (``bundled:NAME``), else even rank fusion."""
    return MEASURED_FUSION.get(bundled_name(model), Fusion())


class HybridRetriever:
    """Dense and BM25 lists, ``candidates`` each, merged by ``fusion`` (RetrievalSettings.fusion:
    the one measured best for the embedder in use, unless set)."""

    def __init__(self, retrievers: Sequence[Retriever], candidates: int, fusion: Fusion) -> None:
        self.retrievers, self.candidates, self.fusion = retrievers, candidates, fusion

    def retrieve(self, query: str, k: int) -> list[Hit]:
        rankings = [r.retrieve(query, max(k, self.candidates)) for r in self.retrievers]
        return self.fusion(rankings, k)
