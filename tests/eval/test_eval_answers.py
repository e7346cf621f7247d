"""`rag eval answers` / `compare`: ALCE citation metrics, intervals, runs that resume, the
regression gate. Fake models (hash embedder, extractive generator); tiny real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eval import runs
from eval.answers import Question, load_questions
from eval.citation_metrics import answer_citation_scores, sentence_scores
from eval.compare import compare
from eval.intervals import (
    interval,
    long_answers,
    mean_of,
    paired_difference,
    refusal,
    summarise,
)
from rag.cli.main import cli
from rag.generation.answering import Answer
from rag.grounding.citations import split_sentences
from rag.grounding.support import SupportScorer
from rag.service.pipeline import Pipeline
from tests.fakes import ExtractiveGenerator, HashEmbedder

ROOT = Path(__file__).resolve().parents[2]
DOCS_SET = ROOT / "eval" / "questions" / "docs.jsonl"
PASSAGES = {
    1: "The Transformer base model uses 8 parallel attention heads in every layer.",
    2: "The encoder is a stack of 6 identical layers with residual connections.",
    3: "Dropout of 0.1 is applied to the output of each sub-layer.",
}


def scorer() -> SupportScorer:
    return SupportScorer(HashEmbedder(dim=256).embed_documents, method="similarity",
                         threshold=0.45)


def make_answer(text: str, refused: bool = False) -> Answer:
    from rag.grounding.citations import Sentence

    sentences = [Sentence(t, [n for n in c if n in PASSAGES], []) for t, c in split_sentences(text)]
    sources = [{"n": n, "text": t, "cited": any(n in s.citations for s in sentences),
                "source": f"/docs/{n}.pdf", "doc_key": f"/docs/{n}.pdf"}
               for n, t in PASSAGES.items()]
    return Answer("q", text, sentences, sources, refused, [], {}, {})


RIGHT = ("The base model uses 8 parallel attention heads [1]. "
         "The encoder is a stack of 6 identical layers [2].")


def scores(text: str) -> dict[str, float | None]:
    return answer_citation_scores(sentence_scores(make_answer(text), scorer()))


def test_alce_scores_of_a_well_cited_answer() -> None:
    assert scores(RIGHT) == {"citation_recall": 1.0, "citation_precision": 1.0,
                             "cited_rate": 1.0, "grounded_rate": 1.0}


def test_swapped_citations_lower_precision_and_recall() -> None:
    swapped = scores(RIGHT.replace("[1]", "[x]").replace("[2]", "[1]").replace("[x]", "[2]"))
    assert swapped["citation_recall"] < 1.0 and swapped["citation_precision"] < 1.0
    assert swapped["grounded_rate"] == 1.0  # the passages still support it; the citations do not


def test_an_extra_uncited_sentence_lowers_recall_by_one_over_n() -> None:
    extra = scores(RIGHT + " Dropout of 0.1 is applied to each sub-layer.")
    assert extra["citation_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert extra["cited_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert extra["citation_precision"] == 1.0  # precision counts citations, not sentences


def test_an_unneeded_extra_citation_is_irrelevant() -> None:
    over = scores("The base model uses 8 parallel attention heads [1, 3].")
    assert over["citation_recall"] == 1.0 and over["citation_precision"] == 0.5


def test_refusals_are_not_claims() -> None:
    answer = make_answer("The indexed documents do not answer this.", refused=True)
    answer.sentences[0].flags.append("refusal")
    assert answer_citation_scores(sentence_scores(answer, scorer()))["citation_recall"] is None


def test_intervals_are_seeded_and_never_nan() -> None:
    rows = [{"id": str(i), "fact_found": i % 3 != 0} for i in range(30)]
    first, again = interval(rows, mean_of("fact_found")), interval(rows, mean_of("fact_found"))
    assert first == again and first["low"] <= first["value"] <= first["high"]
    assert interval(rows, mean_of("missing")) == {"value": None, "low": None, "high": None}
    assert summarise([{"id": "1", "error": "boom"}])["fact_found"]["value"] is None
    same = paired_difference(rows, rows, mean_of("fact_found"))
    assert (same["diff"], same["low"], same["high"]) == (0.0, 0.0, 0.0)


def test_refusal_precision_recall_f1() -> None:
    rows = [{"unanswerable": True, "refused": True}, {"unanswerable": True, "refused": False},
            {"unanswerable": False, "refused": True}, {"unanswerable": False, "refused": False}]
    assert refusal("precision")(rows) == 0.5 and refusal("recall")(rows) == 0.5
    assert refusal("f1")(rows) == 0.5
    assert refusal("f1")([{"unanswerable": False, "refused": False}]) is None


def test_answer_length_counts_answers_given_and_flags_copied_passages() -> None:
    rows = [{"refused": False, "sentences": 2}, {"refused": False, "sentences": 9},
            {"refused": True, "sentences": 1}, {"refused": False, "sentences": 5}]
    summary = summarise(rows)
    assert summary["answer_sentences"]["value"] == round(16 / 3, 4)
    assert long_answers(rows) == 1 / 3
    assert long_answers([{"refused": True, "sentences": 1}]) is None


@pytest.fixture
def docs_pipeline(settings) -> Pipeline:  # type: ignore[no-untyped-def]
    # Every retrieved passage given (no token budget), so k=1 really answers from one of ten.
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(
        update={"passage_tokens": 0})})
    pipeline = Pipeline(settings, "docs", embedder=HashEmbedder(dim=256, max_tokens=128),
                        generator=ExtractiveGenerator())
    pipeline.index([ROOT / "docs"])
    return pipeline


def run_config(pipeline: Pipeline, folder: Path, k: int | None = None,
               mode: str | None = "bm25") -> list[dict]:  # type: ignore[type-arg]
    questions = load_questions(DOCS_SET)
    meta = {"dataset": "docs", "kb": "docs", "config": runs.config_of(pipeline, k, mode)}
    rows = runs.run(pipeline, questions, folder, meta, k, mode, batch=8)
    runs.finish(folder, rows, meta)
    return rows


def without_time(path: Path) -> list[dict]:  # type: ignore[type-arg]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def test_reruns_score_bit_identically_and_compare_catches_a_worse_config(
        docs_pipeline: Pipeline, tmp_path: Path) -> None:
    """Two runs of one config score the same (minus time) and `rag eval compare` passes them;
    the same questions answered by a generator that answers only when a source sentence holds
    every content word of the question are flagged as a regression (it refuses nearly all:
    worse whatever docs/ says; a k=1 run used to be the worse one, until a docs/ edit made it
    as good). One test, so the two runs are scored once (each scores every sentence)."""
    base, rerun = tmp_path / "base", tmp_path / "rerun"
    run_config(docs_pipeline, base)
    run_config(docs_pipeline, rerun)
    strict = Pipeline(docs_pipeline.settings, "docs", embedder=docs_pipeline.embedder,
                      generator=ExtractiveGenerator(min_overlap=1.0))
    run_config(strict, tmp_path / "strict")
    assert without_time(base / runs.PER_ANSWER) == without_time(rerun / runs.PER_ANSWER)
    a, b = (json.loads((r / "summary.json").read_text())["metrics"] for r in (base, rerun))
    a.pop("seconds_per_answer"), b.pop("seconds_per_answer")
    assert a == b
    report = (base / "report.html").read_text()
    assert "<svg" in report and "citation_recall" in report  # self-contained: nothing fetched
    assert "<script" not in report and " src=" not in report and "<link" not in report
    assert compare(base, rerun)["regressions"] == []
    worse = compare(base, tmp_path / "strict")
    assert worse["regressions"], worse["metrics"]
    runner = CliRunner()
    ok = runner.invoke(cli, ["eval", "compare", str(base), str(rerun)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(cli, ["eval", "compare", str(base), str(tmp_path / "strict")])
    assert bad.exit_code == 1 and "regression in" in bad.output
    unknown = runner.invoke(cli, ["eval", "compare", str(base), str(tmp_path / "strict"),
                                 "--metric", "nope"])
    assert unknown.exit_code == 1 and "unknown metric" in unknown.output


class FailsOn(ExtractiveGenerator):
    """Raises for prompts that mention ``word``, as a broken server would for one request."""

    def __init__(self, word: str) -> None:
        super().__init__()
        self.word, self.calls = word, 0

    def generate(self, prompts, max_tokens, temperature=None, model=None):  # type: ignore[no-untyped-def]
        self.calls += len(prompts)
        if any(self.word in p.rsplit("Question:", 1)[-1] for p in prompts):
            from rag.core.errors import GenerationError

            raise GenerationError("the LLM server answered 500")
        return super().generate(prompts, max_tokens, temperature, model)


def test_failures_are_recorded_and_a_rerun_resumes(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    questions = [Question(question=q) for q in ("What do cats do?", "What do dogs do?",
                                                 "What do fish do?", "Where is the llama?")]
    docs = tmp_path / "animals"
    docs.mkdir()
    (docs / "a.md").write_text("Cats purr all day. Dogs bark at the mailman. Fish swim.\n")
    pipeline = Pipeline(settings, "animals", embedder=HashEmbedder(), generator=FailsOn("dogs"))
    pipeline.index([docs])
    meta = {"dataset": "animals", "kb": "animals", "config": runs.config_of(pipeline, None, None)}
    rows = runs.run(pipeline, questions, tmp_path / "run", meta, batch=4)
    assert [("error" in r) for r in rows] == [False, True, False, False]
    assert "500" in rows[1]["error"]
    # A crash mid-write leaves half a line; the rerun asks that one and the failed one again.
    per_answer = tmp_path / "run" / runs.PER_ANSWER
    per_answer.write_text(per_answer.read_text()[:-20])
    generator = FailsOn("nothing")
    pipeline = Pipeline(settings, "animals", embedder=HashEmbedder(), generator=generator)
    rows = runs.run(pipeline, questions, tmp_path / "run", meta, batch=4)
    assert generator.calls == 2 and not any("error" in r for r in rows)
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4"]
    other = {**meta, "config": runs.config_of(pipeline, 1, None)}
    with pytest.raises(runs.RunError, match="another dataset or config"):
        runs.run(pipeline, questions, tmp_path / "run", other)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?"}\n{"question": \n')
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "answers", "--dataset", str(bad), "--kb", "x"])
    assert result.exit_code == 1 and "bad.jsonl:2: not JSON" in result.output
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "ok?"}\n')
    result = runner.invoke(cli, ["eval", "answers", "--dataset", str(good), "--kb", "nope"])
    assert result.exit_code == 1 and "nope" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_scores_without_attribution_use_the_models_own_citations() -> None:
    answer = make_answer("The base model uses 8 parallel attention heads.")
    s = answer.sentences[0]
    s.citations, s.attributed = [1], [1]  # as rag's attribution leaves it
    with_rag = answer_citation_scores(sentence_scores(answer, scorer()))
    model = answer_citation_scores(sentence_scores(answer, scorer(), model_only=True))
    assert with_rag["citation_recall"] == 1.0 and model["citation_recall"] == 0.0
    assert model["cited_rate"] == 0.0 and model["citation_precision"] == 0.0
