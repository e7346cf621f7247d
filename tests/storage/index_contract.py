"""The contract every index backend keeps (FAISS + bm25s, Milvus Lite, Milvus's own BM25, a Milvus
server): the same KB answers the same searches, removals and failed publishes the same way. A
backend's tests subclass ``IndexBackendContract`` and provide the ``backend`` fixture, a name
``make_pipeline`` knows, as haystack's document-store tests are shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rag.core.config import load_settings
from rag.core.errors import KBError
from rag.service.pipeline import Pipeline
from rag.storage.snapshot_build import backend_of
from tests.fakes import HashEmbedder, ReverseReranker
from tests.helpers import write_corpus

# milvus: Milvus Lite (local BM25, as its analyzer has no stemmer); milvus-bm25: Milvus's own
# full-text BM25; milvus-server: reached over gRPC at a URL as a server is (Milvus Lite serving
# it), which also drops replaced collections and falls back to local BM25 where the server's
# analyzer is missing.
BACKENDS = ["faiss", "milvus", "milvus-bm25", "milvus-server"]
INDEX: dict[str, dict[str, object]] = {
    "faiss": {"backend": "faiss"}, "milvus": {"backend": "milvus"},
    "milvus-bm25": {"backend": "milvus", "milvus_bm25": "milvus"},
    "milvus-server": {"backend": "milvus"},
}


def make_pipeline(backend: str, kind: str = "flat") -> Pipeline:
    index = {**INDEX[backend], "kind": kind}
    if backend == "milvus-server":
        index["milvus_uri"] = os.environ["RAG_TEST_MILVUS_URI"]
    return Pipeline(load_settings(index=index), "contract", embedder=HashEmbedder(),
                    reranker=ReverseReranker())


def written_by(pipeline: Pipeline) -> str:
    return backend_of(pipeline.kb.path / "snapshots" / pipeline.kb.snapshot().id)[0]


def rows_in(uri: str, generation: int | None = None) -> int:
    """Rows of the server's one collection (of one generation)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        [name] = client.list_collections()
        where = "born >= 0" if generation is None else f"born == {generation}"
        return int(client.query(name, filter=where, output_fields=["count(*)"])[0]["count(*)"])
    finally:
        client.close()


def sources(pipeline: Pipeline, query: str) -> set[str]:
    return {h.chunk.source.rsplit("/", 1)[-1] for mode in ("dense", "bm25")
            for h in pipeline.search(query, k=10, mode=mode).hits}


class IndexBackendContract:
    """Run against the ``backend`` fixture of the subclass."""

    @pytest.fixture
    def indexed(self, backend: str, tmp_path: Path) -> Pipeline:
        pipeline = make_pipeline(backend)
        pipeline.index([write_corpus(tmp_path / "docs")])
        yield pipeline
        pipeline.kb.close()


    def test_snapshot_is_written_by_the_configured_backend(self, indexed: Pipeline, backend: str) -> None:
        snap = indexed.kb.snapshot()
        assert written_by(indexed) == INDEX[backend]["backend"]
        assert len(snap) == len(snap.dense) == len(snap.sparse) == 3
        assert type(snap.sparse).__name__ == ("MilvusText" if backend == "milvus-bm25" else "Bm25Index")


    @pytest.mark.parametrize("kind", ["flat", "hnsw"])
    def test_dense_search_matches_exact_inner_products(self, backend: str, kind: str,
                                                       tmp_path: Path) -> None:
        pipeline = make_pipeline(backend, kind)
        docs = tmp_path / "docs"
        docs.mkdir()
        for i in range(40):
            (docs / f"n{i}.txt").write_text(f"note {i} about topic{i % 7} and item{i}\n")
        pipeline.index([docs])
        snap = pipeline.kb.snapshot()
        _, _, vectors = snap.store.current_rows(pipeline.embedder.dim)
        queries = pipeline.embedder.embed_documents(["topic3 item10", "note 5", "item39 topic4"])
        rows, scores = snap.dense.search(queries, 5)
        for q, query in enumerate(queries):  # the best five scores (ties in any order), each true
            assert np.allclose(scores[q], np.sort(query @ vectors.T)[::-1][:5], atol=1e-4)
            assert np.allclose(scores[q], vectors[rows[q]] @ query, atol=1e-4)
        pipeline.kb.close()


    @pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
    def test_modes_find_the_file_with_provenance(self, indexed: Pipeline, mode: str) -> None:
        top = indexed.search("Dogs bark at the mailman", k=2, mode=mode).hits[0]
        assert top.chunk.source.endswith("dogs.txt") and top.chunk.text.startswith("Dogs bark")
        assert {"dense": top.dense, "bm25": top.bm25, "hybrid": top.fused}[mode] is not None


    def test_ask_and_retrieval_eval_work_the_same(self, indexed: Pipeline, backend: str,
                                                  tmp_path: Path) -> None:
        from eval.retrieval import BeirDataset, evaluate
        from tests.fakes import ExtractiveGenerator
        from tests.helpers import tiny_beir

        indexed._generator = ExtractiveGenerator()
        answer = indexed.ask("Who do dogs bark at?")
        cited = [s for s in answer.sources if s["cited"]]
        assert "mailman" in answer.text and not answer.refused
        assert cited and str(cited[0]["source"]).endswith("dogs.txt")
        data = BeirDataset.load(tiny_beir(tmp_path / "beir"))
        beir = Pipeline(indexed.settings, "beir", embedder=HashEmbedder())
        beir.index([data.corpus])
        bm25, hybrid = evaluate(beir, data, ["bm25", "hybrid"])
        # As tests/eval/test_eval.py; Milvus Lite's own BM25 does not stem ("barks" misses "bark").
        expected = 1 / 3 if backend == "milvus-bm25" else 2 / 3
        assert bm25.metrics["nDCG@10"] == pytest.approx(expected, abs=1e-4)
        assert hybrid.per_query["q2"]["nDCG@10"] == 1.0  # (q3's dense scores tie: any order)
        beir.kb.close()


    def test_keyword_search_needs_a_matching_term(self, indexed: Pipeline) -> None:
        assert indexed.search("zzzqqq", mode="bm25").hits == []
        hits = indexed.search("mailman", mode="bm25").hits
        assert [h.chunk.source.rsplit("/", 1)[-1] for h in hits] == ["dogs.txt"]
        assert hits[0].bm25 > 0


    def test_text_with_no_keyword_indexes_and_searches(self, backend: str, tmp_path: Path) -> None:
        """Stopwords, single letters and punctuation leave the keyword index no vocabulary
        (bm25s could not index it); the KB is still published and dense search serves it."""
        docs = tmp_path / "bare"
        docs.mkdir()
        (docs / "h.md").write_text("# h\n\n# the\n\n...\n")
        pipeline = make_pipeline(backend)
        try:
            report = pipeline.index([docs])
            assert report.ok and report.indexed == 1
            pipeline.search("the", mode="bm25")  # none here; Milvus's own analyzer keeps "the"
            assert pipeline.search("h", mode="hybrid").hits
        finally:
            pipeline.kb.close()

    def test_removed_files_leave_the_index(self, indexed: Pipeline, tmp_path: Path) -> None:
        dogs = str(tmp_path / "docs" / "dogs.txt")
        assert indexed.remove([dogs]) > 0
        assert indexed.search("mailman", mode="bm25").hits == []
        assert all(h.chunk.source != dogs for h in indexed.search("Dogs bark", mode="dense").hits)
        assert len(indexed.kb.snapshot()) == 2
        indexed.remove([str(tmp_path / "docs" / n) for n in ("cats.md", "sub/fish.html")])
        assert len(indexed.kb.snapshot()) == 0  # an empty KB searches, and finds nothing
        assert indexed.search("cats", mode="hybrid").hits == []


    def test_a_failed_publish_keeps_the_previous_index(self, indexed: Pipeline, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
        import rag.storage.snapshot_build as build

        before = indexed.kb.current_id()

        def broken(*args: object) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(build, "write_indexes", broken)
        (tmp_path / "docs" / "new.txt").write_text("Parrots talk.\n")
        with pytest.raises(KBError, match="disk on fire; the previous index stays live"):
            indexed.index([tmp_path / "docs"])
        assert indexed.kb.current_id() == before
        assert [p.name for p in (indexed.kb.path / "snapshots").iterdir()] == [before]
        assert indexed.search("mailman", mode="hybrid").hits[0].chunk.source.endswith("dogs.txt")


    def test_switching_backend_republishes_without_embedding(self, backend: str, tmp_path: Path) -> None:
        other = "milvus" if backend == "faiss" else "faiss"
        if other == "milvus" and "RAG_TEST_MILVUS_URI" in os.environ:
            other = "milvus-server"
        pytest.importorskip("milvus_lite")
        docs = write_corpus(tmp_path / "docs")
        first = make_pipeline(other)
        first.index([docs])
        first.kb.close()
        moved = make_pipeline(backend)
        report = moved.index([docs])
        assert (report.indexed, report.unchanged) == (0, 3)
        assert moved.embedder.embedded == 1  # type: ignore[attr-defined] # the compatibility probe
        assert written_by(moved) == INDEX[backend]["backend"]
        assert moved.search("mailman", mode="hybrid").hits[0].chunk.source.endswith("dogs.txt")
        moved.kb.close()
