from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.config import Settings
from rag.core.types import Chunk, Hit
from rag.langchain_retriever import KBRetriever
from rag.retrieval.retrievers import Fusion, rrf, score_fusion
from rag.service.pipeline import Pipeline, fusion_of
from tests.helpers import write_corpus


def hit(cid: str, **scores: float) -> Hit:
    chunk = Chunk(cid, "d", "k", "s", "t", None, None, 0, 1, 0)
    h = Hit(chunk, cid, 0.0, **scores)
    return h


def test_rrf_sums_reciprocal_ranks_and_keeps_scores() -> None:
    dense = [hit("a", dense=0.9), hit("b", dense=0.8)]
    sparse = [hit("b", bm25=7.0), hit("c", bm25=3.0)]
    fused = rrf([dense, sparse], k=3, rrf_k=60)
    assert [h.chunk_id for h in fused] == ["b", "a", "c"]
    b = fused[0]
    assert b.fused == pytest.approx(1 / 62 + 1 / 61)
    assert (b.dense, b.bm25) == (0.8, 7.0)
    assert fused[2].dense is None


def test_weighted_rrf_leans_towards_the_heavier_list() -> None:
    dense = [hit("a", dense=0.9), hit("b", dense=0.8)]
    sparse = [hit("b", bm25=7.0), hit("c", bm25=3.0)]
    assert rrf([dense, sparse], 3, 60, (0.5, 0.5))[0].fused == pytest.approx(1 / 62 + 1 / 61)
    dense, sparse = [hit("a", dense=0.9), hit("b", dense=0.8)], [hit("c", bm25=7.0)]
    assert [h.chunk_id for h in rrf([dense, sparse], 3, 60, (0.9, 0.1))] == ["a", "b", "c"]
    assert [h.chunk_id for h in rrf([dense, sparse], 3, 60, (0.1, 0.9))] == ["c", "a", "b"]


def scored(cid: str, field: str, score: float) -> Hit:
    return Hit(hit(cid).chunk, cid, score, **{field: score})


def test_score_fusion_keeps_a_strong_keyword_lead_that_rank_fusion_loses() -> None:
    """A passage BM25 scores far above the rest (an exact rare word) but dense search ranks
    fourth wins over one both lists rank second; rank fusion sees only the ranks."""
    dense = [scored("x", "dense", 0.62), scored("mid", "dense", 0.60),
             scored("z", "dense", 0.58), scored("exact", "dense", 0.55)]
    sparse = [scored("exact", "bm25", 18.0), scored("mid", "bm25", 6.0), scored("y", "bm25", 5.5)]
    fused = score_fusion([dense, sparse], 3, (0.5, 0.5))
    assert fused[0].chunk_id == "exact"
    assert fused[0].fused == pytest.approx(0.5 * 0.55 / 0.62 + 0.5)
    assert (fused[0].dense, fused[0].bm25) == (0.55, 18.0)
    assert rrf([dense, sparse], 3, 60)[0].chunk_id == "mid"


def test_score_fusion_weights_and_empty_or_negative_lists() -> None:
    dense = [scored("a", "dense", 0.9), scored("b", "dense", 0.3)]
    sparse = [scored("b", "bm25", 4.0)]
    assert [h.chunk_id for h in score_fusion([dense, sparse], 2, (0.9, 0.1))] == ["a", "b"]
    assert [h.chunk_id for h in score_fusion([dense, sparse], 2, (0.1, 0.9))] == ["b", "a"]
    assert [h.chunk_id for h in score_fusion([dense, []], 2)] == ["a", "b"]
    negative = [scored("a", "dense", -0.1), scored("b", "dense", -0.2)]
    fused = score_fusion([negative, sparse], 2, (0.5, 0.5))  # no cosine above 0: no match
    assert [(h.chunk_id, h.fused) for h in fused] == [("b", 0.5), ("a", 0.0)]


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, Fusion("rrf", 0.5)),  # an embedder not measured: even rank fusion
    ({"embedder": {"model": "bundled:all-MiniLM-L6-v2"}}, Fusion("score", 0.5)),
    ({"embedder": {"model": "bundled:embeddinggemma-300m"}}, Fusion("rrf", 0.9)),
    ({"embedder": {"model": "bundled:embeddinggemma-300m"}, "retrieval": {"fusion": "score"}},
     Fusion("score", 0.5)),  # a method not measured with it: even weights
    ({"embedder": {"model": "bundled:all-MiniLM-L6-v2"},
      "retrieval": {"fusion": "rrf", "dense_weight": 0.3, "rrf_k": 10}}, Fusion("rrf", 0.3, 10)),
])
def test_auto_fusion_is_the_one_measured_for_the_embedder(settings: dict, expected: Fusion) -> None:
    base = {"embedder": {"model": "some/other-model"}}
    assert fusion_of(Settings.model_validate({**base, **settings})) == expected


@pytest.fixture
def indexed(fake_pipeline: Pipeline, tmp_path: Path) -> Pipeline:
    fake_pipeline.index([write_corpus(tmp_path / "docs")])
    return fake_pipeline


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modes_find_the_right_file(indexed: Pipeline, mode: str) -> None:
    result = indexed.search("Dogs bark at the mailman", k=2, mode=mode)
    top = result.hits[0]
    assert top.chunk.source.endswith("dogs.txt")
    assert {"dense": top.dense, "bm25": top.bm25, "hybrid": top.fused}[mode] is not None


def test_unknown_words_and_empty_query(indexed: Pipeline) -> None:
    assert indexed.search("zzzqqq", mode="bm25").hits == []
    empty = indexed.search("   ")
    assert empty.hits == [] and "empty query" in empty.warnings


def test_rerank_reorders_and_reports(indexed: Pipeline) -> None:
    result = indexed.search("dogs", k=3, rerank=True)
    assert result.reranker == "fake-reverse"
    assert all(h.rerank is not None for h in result.hits)


def test_langchain_retriever_returns_documents_with_provenance(indexed: Pipeline) -> None:
    docs = KBRetriever(pipeline=indexed, k=2, mode="hybrid").invoke("fish swim")
    assert docs[0].page_content.startswith("Fish swim")
    meta = docs[0].metadata
    assert meta["source"].endswith("fish.html") and "scores" in meta and "span" in meta


def test_a_search_reads_one_snapshot_even_across_a_publish(fake_pipeline, tmp_path) -> None:  # noqa: ANN001
    """Rows of the snapshot a retriever started with map to that snapshot's chunks, even when a
    removal publishes another snapshot in between: every score matches its passage."""
    import numpy as np

    from tests.helpers import write_corpus

    docs = write_corpus(tmp_path / "docs")
    fake_pipeline.index([docs])
    dense = fake_pipeline.retriever("dense")
    fake_pipeline.remove([str(docs / "cats.md")])  # publishes; rows shift in the new snapshot
    hits = dense.retrieve("dogs bark fish swim", 10)
    assert hits
    embed = fake_pipeline.embedder
    query = embed.embed_query("dogs bark fish swim")
    for hit in hits:
        expected = float(np.dot(query, embed.embed_documents([hit.chunk.embed_text])[0]))
        assert abs(expected - hit.dense) < 1e-5, hit.chunk.text
