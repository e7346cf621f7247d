"""``rag eval answers``: ask a question set in batches, score every answer, write the results as
they come (``per_answer.jsonl``), resume a partial run, and summarise with intervals.

A run folder holds ``run.json`` (what was run: dataset, KB, the settings that shape answers),
``per_answer.jsonl`` (one scored answer or one failure per line), ``summary.json`` and
``report.html``. A rerun into the same folder with the same settings skips the questions already
answered and retries the failed ones; with other settings it is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from eval.answers import Question, score
from eval.citation_metrics import answer_citation_scores, sentence_scores
from eval.intervals import Row, summarise
from eval.scifact import checked_verdict
from rag.core.errors import RunError
from rag.generation.answering import Answer
from rag.service.pipeline import Pipeline, fusion_of, passage_budget

PER_ANSWER = "per_answer.jsonl"


def question_ids(questions: Sequence[Question]) -> list[str]:
    """Each question's id, or its line number (from 1) when it has none; ids must be unique."""
    ids = [q.id or f"q{i}" for i, q in enumerate(questions, 1)]
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise RunError(f"question id {i!r} appears twice in the question set")
        seen.add(i)
    return ids


def config_of(pipeline: Pipeline, k: int | None, mode: str | None) -> Row:
    """The settings that shape an answer, ``auto`` resolved as the run used it; two runs with
    equal configs are comparable."""
    s = pipeline.settings
    fusion = fusion_of(s)
    retrieval = s.retrieval.model_dump() | {
        "k": k or s.retrieval.k, "mode": mode or s.retrieval.mode, "fusion": fusion.method,
        "dense_weight": fusion.dense_weight, "passage_tokens": passage_budget(s)}
    scorer = pipeline.scorer
    return {
        "kb": pipeline.kb.name, "embedder": pipeline.embedder.name,
        "retrieval": retrieval, "reranker": s.reranker.model_dump(mode="json"),
        "generator": {key: getattr(s.generator, key) for key in (
            "model", "temperature", "seed", "answer_tokens", "context_window", "dtype")},
        "support": {"method": scorer.method, "threshold": scorer.threshold},
        "gate": None if (gate := pipeline.gate) is None else {"threshold": gate.threshold},
    }


def score_answer(answer: Answer, question: Question, qid: str, pipeline: Pipeline,
                 seconds: float) -> Row:
    """Everything measured about one answer, self-contained for the report."""
    sentences = sentence_scores(answer, pipeline.scorer)
    row: Row = {"id": qid, **score(answer, question), **answer_citation_scores(sentences)}
    changed = any(s.attributed or s.removed for s in answer.sentences)
    model = (answer_citation_scores(sentence_scores(answer, pipeline.scorer, model_only=True))
             if changed else answer_citation_scores(sentences))  # same citations: same scores
    row.update({f"model_{k}": v for k, v in model.items() if k != "grounded_rate"})
    claims = [s for s in answer.sentences if "refusal" not in s.flags]
    row["attributed_rate"] = (round(sum(bool(s.attributed) for s in claims) / len(claims), 4)
                              if claims else None)
    row["refused_answerable"] = answer.refused if not question.unanswerable else None
    row["seconds"] = round(seconds, 3)
    if question.verdict is not None:
        first = sentences[0].text if sentences else answer.text
        row["verdict_gold"] = question.verdict
        cited = [str(s["text"]) for s in answer.sources if s["cited"]] or \
            [str(s["text"]) for s in answer.sources]
        row["verdict"] = checked_verdict(question.query or question.question, first,
                                         answer.refused, cited, pipeline.scorer)
        row["verdict_correct"] = row["verdict"] == question.verdict
    row["sentence_scores"] = [s.to_dict() for s in sentences]
    row["sources"] = [{k: s.get(k) for k in ("n", "cited", "title", "source", "doc_key", "page",
                                             "text")} for s in answer.sources]
    row["warnings"] = answer.warnings
    return row


def _load_rows(path: Path) -> list[Row]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that question is asked again
    return rows


def prepare(folder: Path, meta: Row) -> list[Row]:
    """The finished rows of an earlier run of the same config in ``folder`` (failures dropped,
    so they are retried), else an empty new run."""
    folder.mkdir(parents=True, exist_ok=True)
    run_file = folder / "run.json"
    if run_file.is_file():
        earlier = json.loads(run_file.read_text(encoding="utf-8"))
        if earlier.get("config") != meta["config"] or earlier.get("dataset") != meta["dataset"]:
            raise RunError(f"{folder} holds a run of another dataset or config; "
                           "choose a new --output folder")
    else:
        run_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    rows = [r for r in _load_rows(folder / PER_ANSWER) if "error" not in r]
    with open(folder / PER_ANSWER, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows


def run(pipeline: Pipeline, questions: Sequence[Question], folder: Path,
        meta: Row, k: int | None = None, mode: str | None = None,
        batch: int = 16, tick: Callable[[int], None] = lambda n: None) -> list[Row]:
    """Ask every question not answered yet, in batches; each result is appended at once."""
    ids = question_ids(questions)
    done = {str(r["id"]): r for r in prepare(folder, meta)}
    tick(len(done))
    todo = [(i, q) for i, q in zip(ids, questions, strict=True) if i not in done]
    with open(folder / PER_ANSWER, "a", encoding="utf-8") as out:
        for start in range(0, len(todo), batch):
            part = todo[start:start + batch]
            for row in _ask(pipeline, part, k, mode):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                done[str(row["id"])] = row
            tick(len(part))
    return [done[i] for i in ids if i in done]


def _ask(pipeline: Pipeline, part: Sequence[tuple[str, Question]], k: int | None,
         mode: str | None) -> list[Row]:
    """One batch; if it fails, each question alone, so one bad question fails by itself."""
    started = time.perf_counter()
    try:
        answers = pipeline.ask_many([q.question for _, q in part], k, mode,
                                    queries=[q.query for _, q in part])
    except Exception as exc:  # noqa: BLE001 - recorded per question, the run goes on
        if len(part) > 1:
            return [row for item in part for row in _ask(pipeline, [item], k, mode)]
        qid, question = part[0]
        return [{"id": qid, "question": question.question,
                 "error": f"{type(exc).__name__}: {str(exc)[:300]}"}]
    each = (time.perf_counter() - started) / len(part)
    return [score_answer(a, q, i, pipeline, each)
            for (i, q), a in zip(part, answers, strict=True)]


def finish(folder: Path, rows: Sequence[Row], meta: Row) -> Row:
    """summary.json and report.html for the rows of a run."""
    from eval.answer_report import html_report

    summary = {**meta, "answered": sum(1 for r in rows if "error" not in r),
               "failed": [{"id": r["id"], "error": r["error"]} for r in rows if "error" in r],
               "metrics": summarise(rows)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "report.html").write_text(html_report(summary, rows), encoding="utf-8")
    return summary
