"""Held-out numbers for the trained encoders (each epoch's point of the learning curve, and the
model card's metrics), computed the way rag uses the models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from eval.scifact import SciFact, support_pairs
from rag.core.types import Hit

Predict = Callable[[list[tuple[str, str]]], np.ndarray]  # pairs -> scores (or probabilities)


def _auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    if positive.all() or not positive.any():
        return None
    return round(float(roc_auc_score(positive, scores)), 4)


def verifier_metrics(probabilities: Predict, data: SciFact,
                     sentences: Callable[[str], list[str]]) -> dict[str, float | None]:
    """AUCs on SciFact claims (run it on dev), with (supports, contradicts, neither)
    probabilities of (evidence, claim) pairs:

    - abstract level, as rag reads a passage (each sentence judged, the best one counts):
      ``evidence_vs_nei`` ranks the abstracts that settle a claim above the cited ones that do not
      (score: the most any sentence is evidence, 1 - P(neither)); ``contradiction_vs_support``
      ranks refuting abstracts above supporting ones (score: P(contradicts) / (P(supports) +
      P(contradicts)) at that sentence);
    - rationale level, as ``rag eval support`` pairs them: ``support_vs_contradiction``
      (P(supports) - P(contradicts)) and ``support_vs_unsupported`` (P(supports))."""
    pairs = support_pairs(data)
    p = probabilities([(x.passage, x.claim) for x in pairs])
    kind = np.array([x.kind for x in pairs])
    keep = kind != "unsupported"
    out: dict[str, float | None] = {
        "support_vs_contradiction": _auc(kind[keep] == "support", (p[:, 0] - p[:, 1])[keep]),
        "support_vs_unsupported": _auc(kind[kind != "contradiction"] == "support",
                                       p[kind != "contradiction", 0]),
    }
    rows = []
    for claim in data.claims:
        for doc in dict.fromkeys([*claim.evidence, *claim.cited]):
            if doc in data.abstracts:
                labels = {label for _, label in claim.evidence.get(doc, [])}
                rows.append((claim.claim, sentences(" ".join(data.abstracts[doc])),
                             "NEI" if not labels else "REFUTE" if labels == {"REFUTE"}
                             else "SUPPORT"))
    flat = [(s, claim) for claim, parts, _ in rows for s in parts]
    q, at = probabilities(flat), 0
    evidence, contradiction = [], []
    for _, parts, _ in rows:
        part = q[at:at + len(parts)]
        at += len(parts)
        best = int(np.argmax(1 - part[:, 2]))
        evidence.append(float((1 - part[:, 2]).max()))
        contradiction.append(float(part[best, 1] / (part[best, 0] + part[best, 1] + 1e-9)))
    verdict = np.array([r[2] for r in rows])
    settled = verdict != "NEI"
    out["evidence_vs_nei"] = _auc(settled, np.array(evidence))
    out["contradiction_vs_support"] = _auc(verdict[settled] == "REFUTE",
                                           np.array(contradiction)[settled])
    return out


def reranked_ndcg(scores: Predict, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                  candidates: dict[str, Sequence[Hit]], depth: int) -> float:
    """nDCG@10 when the top ``depth`` candidates of each query are put in the model's order
    (documents by their best chunk, as rag eval retrieval counts them)."""
    import ir_measures
    from ir_measures import nDCG

    run: dict[str, dict[str, float]] = {}
    for qid, query in queries.items():
        hits = list(candidates[qid])
        head = hits[:depth]
        order = np.argsort(-np.asarray(scores([(query, h.chunk.embed_text or h.chunk.text)
                                               for h in head]), dtype=np.float64).ravel(),
                           kind="stable") if head else []
        ranked = [head[i] for i in order] + hits[depth:]
        docs: dict[str, float] = {}
        for rank, hit in enumerate(ranked):
            docs.setdefault(hit.chunk.doc_key, float(len(ranked) - rank))
        run[qid] = docs
    return round(float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]), 4)
