"""Aggregate metrics over answers with seeded bootstrap 95% intervals, and paired differences
between two runs. Every metric is computed from the rows it applies to; one that applies to no
row is ``None``, never NaN. The same rows and seed always give the same numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

Row = dict[str, Any]  # one scored answer (JSON)
Metric = Callable[[Sequence[Row]], float | None]
RESAMPLES = 1000
SEED = 0


def mean_of(key: str) -> Metric:
    """Mean of a per-answer value (booleans count as 0/1) over the rows where it is not None."""
    def metric(rows: Sequence[Row]) -> float | None:
        values = [float(r[key]) for r in rows if r.get(key) is not None]  # type: ignore[arg-type]
        return sum(values) / len(values) if values else None

    return metric


def refusal(which: str) -> Metric:
    """Precision, recall or F1 of refusing, with unanswerable questions as the positives."""
    score = {"precision": precision_score, "recall": recall_score, "f1": f1_score}[which]

    def metric(rows: Sequence[Row]) -> float | None:
        judged = [r for r in rows if r.get("unanswerable") is not None and "error" not in r]
        if not any(r["unanswerable"] for r in judged):
            return None
        return float(score([bool(r["unanswerable"]) for r in judged],
                           [bool(r["refused"]) for r in judged], zero_division=0))

    return metric


LONG_ANSWER = 5  # sentences; more than this for one question reads as a passage copied out


def answered_mean(key: str) -> Metric:
    """Mean of a per-answer value over the answers given (refusals have no length)."""
    def metric(rows: Sequence[Row]) -> float | None:
        values = [float(r[key]) for r in rows if not r.get("refused") and r.get(key) is not None]
        return sum(values) / len(values) if values else None

    return metric


def long_answers(rows: Sequence[Row]) -> float | None:
    """Share of the answers given with more than ``LONG_ANSWER`` sentences."""
    lengths = [int(r["sentences"]) for r in rows
               if not r.get("refused") and r.get("sentences") is not None]
    return sum(n > LONG_ANSWER for n in lengths) / len(lengths) if lengths else None


def verdict_macro_f1(rows: Sequence[Row]) -> float | None:
    """Macro-F1 over the verdict labels present in the gold labels."""
    judged = [r for r in rows if r.get("verdict_gold") is not None]
    if not judged:
        return None
    return float(f1_score([r["verdict_gold"] for r in judged], [r["verdict"] for r in judged],
                          labels=sorted({str(r["verdict_gold"]) for r in judged}),
                          average="macro", zero_division=0))


METRICS: dict[str, Metric] = {
    "citation_recall": mean_of("citation_recall"),
    "citation_precision": mean_of("citation_precision"),
    "cited_rate": mean_of("cited_rate"),
    "model_citation_recall": mean_of("model_citation_recall"),  # before rag's attribution
    "model_citation_precision": mean_of("model_citation_precision"),
    "model_cited_rate": mean_of("model_cited_rate"),
    "attributed_rate": mean_of("attributed_rate"),
    "grounded_rate": mean_of("grounded_rate"),
    "fact_found": mean_of("fact_found"),
    "right_doc_cited": mean_of("right_doc_cited"),
    "verdict_accuracy": mean_of("verdict_correct"),
    "verdict_macro_f1": verdict_macro_f1,
    "refusal_precision": refusal("precision"),
    "refusal_recall": refusal("recall"),
    "refusal_f1": refusal("f1"),
    "refused_answerable": mean_of("refused_answerable"),
    "answer_sentences": answered_mean("sentences"),
    "long_answers": long_answers,
    "seconds_per_answer": mean_of("seconds"),
    "prompt_tokens": mean_of("prompt_tokens"),
    "completion_tokens": mean_of("completion_tokens"),
}
# Quality metrics, gated by ``rag eval compare``: a drop (a rise for the lower-is-better ones)
# beyond the interval is a regression. Time and token counts are reported, not gated.
HIGHER_IS_BETTER = ("citation_recall", "citation_precision", "cited_rate", "grounded_rate",
                    "fact_found", "right_doc_cited", "verdict_accuracy", "verdict_macro_f1",
                    "refusal_f1")
LOWER_IS_BETTER = ("refused_answerable", "long_answers")


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def interval(rows: Sequence[Row], metric: Metric, seed: int = SEED,
             resamples: int = RESAMPLES) -> dict[str, float | None]:
    """The metric and its percentile bootstrap 95% interval over answers."""
    value = metric(rows)
    if value is None:
        return {"value": None, "low": None, "high": None}
    rng = np.random.default_rng(seed)
    draws = [metric([rows[i] for i in rng.integers(0, len(rows), len(rows))])
             for _ in range(resamples)]
    kept = np.array([d for d in draws if d is not None])
    low, high = np.percentile(kept, [2.5, 97.5]) if len(kept) else (value, value)
    return {"value": _round(value), "low": _round(low), "high": _round(high)}


def summarise(rows: Sequence[Row]) -> dict[str, dict[str, float | None]]:
    """Every metric with its interval; failed questions are counted apart, not scored."""
    ok = [r for r in rows if "error" not in r]
    return {name: interval(ok, metric) for name, metric in METRICS.items()}


def paired_difference(a: Sequence[Row], b: Sequence[Row], metric: Metric, seed: int = SEED,
                      resamples: int = RESAMPLES) -> dict[str, float | None]:
    """B minus A on the questions both runs answered, resampling questions (paired bootstrap)."""
    left = {str(r["id"]): r for r in a if "error" not in r}
    right = {str(r["id"]): r for r in b if "error" not in r}
    ids = sorted(left.keys() & right.keys())
    va, vb = metric([left[i] for i in ids]), metric([right[i] for i in ids])
    if va is None or vb is None:
        return {"a": _round(va), "b": _round(vb), "diff": None, "low": None, "high": None,
                "questions": len(ids)}
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        pick = [ids[i] for i in rng.integers(0, len(ids), len(ids))]
        da, db = metric([left[i] for i in pick]), metric([right[i] for i in pick])
        if da is not None and db is not None:
            diffs.append(db - da)
    low, high = np.percentile(diffs, [2.5, 97.5]) if diffs else (vb - va, vb - va)
    return {"a": _round(va), "b": _round(vb), "diff": _round(vb - va), "low": _round(low),
            "high": _round(high), "questions": len(ids)}
