"""`rag train` end to end on a dataset of a dozen abstracts (seconds): the real training code,
the model card, resuming, and the shipped form of a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli.main import cli
from tests.tiny_scifact import write

pytestmark = pytest.mark.integration  # the real MiniLM weights are the base


def test_train_verifier_writes_a_model_and_its_card(tmp_path: Path) -> None:
    data = write(tmp_path / "scifact")
    out = tmp_path / "verifier"
    result = CliRunner().invoke(cli, ["train", "verifier", "--dataset", str(data), "--synthetic",
                                      "30", "--epochs", "1", "--batch-size", "8", "--out",
                                      str(out), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["recipe"]["labels"] == 3 and card["counts"]["examples"] > 30
    assert {"evidence_vs_nei", "support_vs_unsupported"} <= set(card["metrics"]) or \
        card["metrics"]  # a tiny dev set may lack a class; the curve still has a point
    assert len(card["curve"]) == 1 and "train_loss" in card["curve"][0]
    assert 0.0 <= card["threshold"] <= 1.0  # chosen on the train split's support pairs
    model = out / "model"
    assert (model / "MODEL_CARD.md").read_text().startswith("# verifier-minilm")
    assert "rag train verifier" in (model / "MODEL_CARD.md").read_text()
    from rag.grounding.verifier import Verifier

    judged = Verifier(str(model)).judge([("Aspirin prevents heart attacks.",
                                          ["Aspirin prevents heart attacks in this trial."])])
    assert 0.0 <= judged[0].support <= 1.0


def test_train_reranker_on_labelled_queries_and_resume(tmp_path: Path) -> None:
    data = write(tmp_path / "scifact")
    out = tmp_path / "reranker"
    args = ["train", "reranker", "--dataset", str(data), "--epochs", "1", "--batch-size", "8",
            "--negatives", "3", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["counts"]["positives"] >= 8 and card["recipe"]["labels"] == 1
    held = [k for k in card["metrics"] if k.startswith("ndcg@10")]
    assert len(held) == 2, card["metrics"]  # retrieval alone, and reranked
    assert list((out / "checkpoints").glob("checkpoint-*"))
    # --resume continues from the saved epoch: one more epoch, the curve grows.
    again = CliRunner().invoke(cli, [*args[:4], "--epochs", "2", *args[6:], "--resume"])
    assert again.exit_code == 0, again.output
    assert len(json.loads(again.stdout)["curve"]) == 2


def test_a_trained_model_packs_and_materializes_from_its_shipped_form(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder

    from rag import bundled
    from rag.embedding.embedder import resolve_model_path

    base = resolve_model_path("bundled:all-MiniLM-L6-v2")
    model = CrossEncoder(base, num_labels=3)
    model.save_pretrained(str(tmp_path / "trained"))
    monkeypatch.setattr(bundled, "HERE", tmp_path / "bundled")
    card = bundled.pack(tmp_path / "trained", tmp_path / "bundled" / "toy", {"name": "toy"})
    assert (tmp_path / "bundled" / "toy" / "weights.safetensors").stat().st_size < 30 * 2**20
    folder = bundled.materialize("toy", tmp_path / "home")
    restored = CrossEncoder(str(folder))
    pairs = [("Aspirin prevents heart attacks.", "Aspirin reduced heart attacks.")]
    assert abs(restored.predict(pairs) - model.predict(pairs)).max() < 1e-2  # float16 weights
    assert card["sha256"] == bundled.sha256_of(tmp_path / "bundled" / "toy" / "weights.safetensors")
    (tmp_path / "bundled" / "toy" / "weights.safetensors").write_bytes(b"damaged")
    with pytest.raises(bundled.BundledModelError, match="sha256"):
        bundled.verify(bundled.bundled("toy"))
