"""SciFact as support pairs and claims, and the validation of the support function."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from eval import support
from eval.scifact import Pair, SciFact, claim_questions, split_abstract, support_pairs, verdict_of
from rag.cli.main import cli
from rag.core.errors import DatasetError
from rag.grounding.answerability import (
    ANSWERABLE_LET_THROUGH,
    GATE_FEATURES,
    GATE_FILE,
    AnswerabilityGate,
)
from rag.grounding.support import MODEL_FILE, SupportModel, SupportScorer, remembering
from tests.fakes import HashEmbedder
from tests.helpers import SCIFACT, needs_shared

ABSTRACT = ("BACKGROUND Aspirin is common.   \\n RESULTS Aspirin lowered the risk of stroke by "
            "20%. It did not change mortality. Bleeding rose (p < 0.01).")


def write_scifact(folder: Path) -> Path:
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        json.dumps({"_id": "7", "title": "Aspirin", "text": ABSTRACT}) + "\n"
        + json.dumps({"_id": "9", "title": "Other", "text": "One sentence only."}) + "\n")
    claims = [
        {"id": 1, "claim": "Aspirin lowers the risk of stroke.",
         "evidence": {"7": [{"sentences": [1], "label": "SUPPORT"}]}, "cited_doc_ids": [7]},
        {"id": 2, "claim": "Aspirin reduces mortality.",
         "evidence": {"7": [{"sentences": [2], "label": "REFUTE"}]}, "cited_doc_ids": [7]},
        {"id": 3, "claim": "Aspirin cures headaches.", "evidence": {}, "cited_doc_ids": [7]},
        {"id": 4, "claim": "Index out of range.",
         "evidence": {"9": [{"sentences": [3], "label": "SUPPORT"}]}, "cited_doc_ids": [9]},
    ]
    (folder / "claims_dev.jsonl").write_text("".join(json.dumps(c) + "\n" for c in claims))
    return folder


def test_structured_abstracts_split_at_their_section_marks() -> None:
    assert split_abstract(ABSTRACT) == [
        "BACKGROUND Aspirin is common.", "RESULTS Aspirin lowered the risk of stroke by 20%.",
        "It did not change mortality.", "Bleeding rose (p < 0.01)."]


def test_pairs_claims_and_dropped_abstracts(tmp_path: Path) -> None:
    data = SciFact.load(write_scifact(tmp_path / "sf"), "dev")
    assert data.dropped_docs == ["9"]  # evidence sentence 3 does not exist in a 1-sentence text
    pairs = support_pairs(data)
    kinds = [(p.kind, p.passage) for p in pairs if p.claim.startswith("Aspirin lowers")]
    assert kinds[0] == ("support", "RESULTS Aspirin lowered the risk of stroke by 20%.")
    assert {k for k, _ in kinds[1:]} == {"unsupported"} and len(kinds) == 4
    assert ("contradiction", "It did not change mortality.") in [(p.kind, p.passage)
                                                                 for p in pairs]
    questions = claim_questions(data)
    assert [q.verdict for q in questions] == ["SUPPORT", "REFUTE", "NEI", "SUPPORT"]
    assert questions[2].unanswerable and questions[0].query == "Aspirin lowers the risk of stroke."
    assert questions[0].right_docs == ["7"]
    with pytest.raises(DatasetError, match="claims_train.jsonl is missing"):
        SciFact.load(tmp_path / "sf", "train")


def test_verdict_rules() -> None:
    assert verdict_of("Yes, aspirin lowers the risk of stroke [1].", False) == "SUPPORT"
    assert verdict_of("No, aspirin did not change mortality [1].", False) == "REFUTE"
    assert verdict_of("False. It did not change mortality [1].", False) == "REFUTE"
    assert verdict_of("The sources do not support this claim.", False) == "NEI"
    assert verdict_of("The sources refute this claim [2].", False) == "REFUTE"
    assert verdict_of("There is no evidence about headaches.", False) == "NEI"
    assert verdict_of("The indexed documents do not answer this.", True) == "NEI"


def test_auc_threshold_and_training_are_deterministic() -> None:
    pairs = [Pair("cats purr loudly", "cats purr loudly at night", "support"),
             Pair("dogs bark at the mailman", "dogs bark at the mailman daily", "support"),
             Pair("cats purr loudly", "cats never purr", "contradiction"),
             Pair("dogs bark at the mailman", "fish swim in water", "unsupported"),
             Pair("cats purr loudly", "the stock market fell", "unsupported")]
    embed = remembering(HashEmbedder().embed_documents, None)
    scored = support.scored(pairs, SupportScorer(embed, method="similarity").scores)
    assert scored.auc() == 1.0 and scored.auc("unsupported") == 1.0
    threshold = support.best_threshold(scored)
    assert scored.balanced_accuracy(threshold) == 1.0
    first = support.train(SupportScorer(embed, method="similarity"), pairs * 3, "fake", "t")
    again = support.train(SupportScorer(embed, method="similarity"), pairs * 3, "fake", "t")
    assert first == again
    learned = SupportScorer(embed, model=first)
    assert learned.threshold == first.threshold
    high, low = learned.scores([("cats purr loudly", "cats purr loudly at night"),
                                ("cats purr loudly", "the stock market fell")])
    assert high > low


def test_the_shipped_model_loads_and_says_how_it_was_made() -> None:
    model = SupportModel.load(MODEL_FILE)
    assert model.embedder == "bundled:all-MiniLM-L6-v2" and "SciFact train" in model.trained_on
    assert 0 < model.threshold < 1
    x = np.zeros((1, len(model.features)))
    assert 0 < float(model.predict(x)[0]) < 1


@pytest.mark.integration
def test_numbers_and_negations_lower_support(minilm) -> None:  # type: ignore[no-untyped-def]
    scorer = SupportScorer(minilm.embed_documents)  # the shipped learned scorer
    passage = ("In the trial, aspirin lowered the risk of stroke by 20% over five years. "
               "Bleeding events were rare.")
    claim = "Aspirin lowered the risk of stroke by 20%."
    right, number, negated = scorer.scores([
        (claim, passage), ("Aspirin lowered the risk of stroke by 45%.", passage),
        ("Aspirin did not lower the risk of stroke by 20%.", passage)])
    assert scorer.supported(right)
    assert number < right and negated < right
    assert not scorer.supported(number)  # a number the passage does not state
    # answers seen on the papers questions: an invented library and an invented figure
    bwt = ("We describe efficient techniques for implementing the Burrows-Wheeler transform "
           "and its inverse, competitive in speed with Lempel-Ziv coders.")
    library, memory = scorer.scores([
        ("The Python library `pybwt` implements the Burrows-Wheeler transform fastest.", bwt),
        ("The Burrows-Wheeler transform uses 5 to 30K of memory.", bwt)], context=bwt)
    assert not scorer.supported(library) and not scorer.supported(memory)
    assert scorer.supported(scorer.scores([
        ("The Burrows-Wheeler transform can be implemented efficiently.", bwt)], context=bwt)[0])


@pytest.mark.integration
@needs_shared(SCIFACT)
def test_support_eval_on_scifact_runs_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "support"
    result = CliRunner().invoke(cli, ["eval", "support", "--dataset", str(SCIFACT), "--limit",
                                      "12", "--train", "--model-out", str(tmp_path / "m.json"),
                                      "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"similarity", "learned", "verifier"}  # the shipped one
    for method in ("learned", "verifier"):
        assert summary["methods"][method]["dev"]["auc_unsupported"] > 0.5
    assert "<svg" in (out / "report.html").read_text()
    assert SupportModel.load(tmp_path / "m.json").trained_on.startswith("SciFact train")


def test_the_gate_lets_through_its_share_of_answerable_training_claims() -> None:
    rng = np.random.default_rng(0)
    answerable = np.arange(200) < 120
    x = np.column_stack([rng.normal(0.6, 0.1, 200) + 0.2 * answerable,
                         rng.normal(0.5, 0.2, 200) + 0.3 * answerable])
    model = support.train_gate(x, answerable, "fake-hash", "test")
    assert model.features == GATE_FEATURES
    report = support.gate_report(model, x, answerable)
    assert report["answerable_refused"] <= 1 - ANSWERABLE_LET_THROUGH + 0.01
    assert report["auc"] > 0.8 and 0 < report["unanswerable_refused"] < 1
    assert report == support.gate_report(support.train_gate(x, answerable, "fake-hash", "test"),
                                         x, answerable)  # deterministic


@pytest.mark.integration
def test_the_shipped_gate_tells_questions_its_passages_address(minilm) -> None:  # type: ignore[no-untyped-def]
    gate = AnswerabilityGate.shipped(SupportScorer(minilm.embed_documents), minilm.name)
    assert gate is not None
    passages = [
        "On the WMT 2014 English-to-German translation task, the big transformer model "
        "outperforms the best previously reported models by more than 2.0 BLEU, establishing a "
        "new state-of-the-art BLEU score of 28.4.",
        "We describe efficient techniques for implementing the Burrows-Wheeler transform and "
        "its inverse, competitive in speed with Lempel-Ziv coders."]
    assert gate.addressed(gate.score(
        "What BLEU score does the Transformer reach on English-to-German translation?", passages))
    assert not gate.addressed(gate.score("What is the population of Colorado Springs?", passages))


@pytest.mark.integration
def test_gate_eval_trains_and_reports_on_claims(tmp_path: Path) -> None:
    folder = write_scifact(tmp_path / "sf")
    (folder / "claims_train.jsonl").write_text((folder / "claims_dev.jsonl").read_text())
    out = tmp_path / "gate"
    result = CliRunner().invoke(cli, ["eval", "gate", "--dataset", str(folder), "--kb", "sf",
                                      "--train", "--model-out", str(tmp_path / "g.json"),
                                      "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dev"]["claims"] == 4 and summary["dev"]["unanswerable"] == 1
    assert 0 <= summary["dev"]["answerable_refused"] <= 1
    model = SupportModel.load(tmp_path / "g.json", GATE_FEATURES)
    assert model.trained_on.startswith("SciFact train (4 claims")
    assert GATE_FILE.read_text() != (tmp_path / "g.json").read_text()  # the bundled one untouched


def test_remembered_embeddings_are_computed_once_and_bounded() -> None:
    embedder = HashEmbedder()
    seen: list[str] = []

    def embed(texts):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return embedder.embed_documents(texts)

    remembered = remembering(embed, size=2)
    first = remembered(["a b", "c d", "a b"])
    assert seen == ["a b", "c d"] and np.allclose(first[0], first[2])
    assert np.allclose(remembered(["c d"]), embedder.embed_documents(["c d"]))
    assert seen == ["a b", "c d"]  # remembered
    remembered(["e f"])  # evicts the least recently used: "a b"
    remembered(["a b", "c d", "e f"])
    assert seen == ["a b", "c d", "e f", "a b"]


def test_calibration_error_is_zero_when_scores_are_right_as_often_as_they_say() -> None:
    import numpy as np

    positive = np.array([True] * 8 + [False] * 2 + [True] * 2 + [False] * 8)
    honest = support.Scored(np.array([0.8] * 10 + [0.2] * 10), positive,
                            np.array(["support"] * 20))
    assert honest.ece() == 0.0
    observed, predicted = honest.reliability()
    assert np.allclose(observed, [0.2, 0.8]) and np.allclose(predicted, [0.2, 0.8])
    sure = support.Scored(np.array([1.0] * 20), positive, np.array(["support"] * 20))
    assert sure.ece() == 0.5  # says 1.0, right half the time
