from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.retrieval import BeirDataset, evaluate, fusion_sweep, save_results
from rag.core.errors import DatasetError
from rag.service.pipeline import Pipeline, fusion_of
from tests.helpers import tiny_beir


def test_metrics_count_queries_without_hits_as_zero(fake_pipeline: Pipeline,
                                                     tmp_path: Path) -> None:
    data = BeirDataset.load(tiny_beir(tmp_path / "beir"))
    assert set(data.queries) == {"q1", "q2", "q3"}
    fake_pipeline.index([data.corpus])
    [result] = evaluate(fake_pipeline, data, ["bm25"])
    assert result.per_query["q1"]["nDCG@10"] == 1.0
    assert result.per_query["q3"]["nDCG@10"] == 0.0  # no hits at all
    assert result.metrics["nDCG@10"] == pytest.approx(2 / 3, abs=1e-4)
    out = save_results([result], tmp_path / "out", {"dataset": "tiny"})
    assert json.loads((out / "summary.json").read_text())["modes"]["bm25"]["nDCG@10"] > 0.6
    assert len((out / "per_query_bm25.jsonl").read_text().splitlines()) == 3


def test_fusion_sweep_matches_the_search_modes_at_their_weights(fake_pipeline: Pipeline,
                                                                tmp_path: Path) -> None:
    """The configured fusion at its weight is hybrid search; weight 1 ranks as dense search
    does, whichever the method."""
    data = BeirDataset.load(tiny_beir(tmp_path / "beir"))
    fake_pipeline.index([data.corpus])
    sweep = fusion_sweep(fake_pipeline, data, [0.5, 1.0])
    hybrid, dense = evaluate(fake_pipeline, data, ["hybrid", "dense"])
    fusion = fusion_of(fake_pipeline.settings)
    assert sweep[fusion.method][fusion.dense_weight] == hybrid.metrics
    assert sweep["rrf"][1.0] == sweep["score"][1.0] == dense.metrics


def test_missing_qrels_is_a_clear_error(tmp_path: Path) -> None:
    folder = tiny_beir(tmp_path / "beir")
    with pytest.raises(DatasetError, match="qrels/dev.tsv is missing"):
        BeirDataset.load(folder, "dev")
