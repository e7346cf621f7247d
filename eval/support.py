"""Validation of the sentence-support function on SciFact, and training of the learned one.

Every method scores the same labelled pairs (eval/scifact.py): ROC-AUC of support against each
negative kind (contradiction, unsupported) and against both; the threshold that maximises
balanced accuracy on train, and the balanced accuracy that threshold reaches on dev.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

from eval.scifact import Claim, Pair
from rag.grounding.answerability import ANSWERABLE_LET_THROUGH, GATE_FEATURES, gate_features
from rag.grounding.support import FEATURES, SupportModel, SupportScorer
from rag.grounding.verifier import Verifier

NEGATIVE_KINDS = ("contradiction", "unsupported")


@dataclass
class Scored:
    """One method's scores on one split's pairs."""

    scores: np.ndarray
    positive: np.ndarray
    kinds: np.ndarray

    def auc(self, kind: str | None = None) -> float | None:
        keep = self.positive | (self.kinds == kind) if kind else np.ones_like(self.positive)
        labels = self.positive[keep]
        if labels.all() or not labels.any():
            return None
        return round(float(roc_auc_score(labels, self.scores[keep])), 4)

    def balanced_accuracy(self, threshold: float) -> float:
        return round(float(balanced_accuracy_score(self.positive, self.scores >= threshold)), 4)

    def rate_above(self, threshold: float, kind: str) -> float | None:
        """Share of pairs of ``kind`` scored at or above the threshold."""
        mask = self.kinds == kind
        return round(float((self.scores[mask] >= threshold).mean()), 4) if mask.any() else None

    def reliability(self, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(share positive, mean score) per non-empty bin of scores clipped to [0, 1]."""
        from sklearn.calibration import calibration_curve

        return calibration_curve(self.positive, np.clip(self.scores, 0.0, 1.0), n_bins=bins)

    def ece(self, bins: int = 10) -> float:
        """Expected calibration error: the bins' |share positive - mean score|, weighted by
        how many pairs each holds."""
        clipped = np.clip(self.scores, 0.0, 1.0)
        which = np.minimum((clipped * bins).astype(int), bins - 1)
        gaps = [abs(self.positive[which == b].mean() - clipped[which == b].mean()) *
                (which == b).sum() for b in range(bins) if (which == b).any()]
        return round(float(sum(gaps) / len(clipped)), 4)

    def curve(self, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        keep = self.positive | (self.kinds == kind) if kind else np.ones_like(self.positive)
        fpr, tpr, _ = roc_curve(self.positive[keep], self.scores[keep])
        return fpr, tpr


def scored(pairs: Sequence[Pair], score: Callable[[list[tuple[str, str]]], list[float]]) -> Scored:
    values = score([(p.claim, p.passage) for p in pairs])
    return Scored(np.asarray(values, dtype=np.float64), np.array([p.positive for p in pairs]),
                  np.array([p.kind for p in pairs]))


def best_threshold(train: Scored) -> float:
    """The threshold with the highest balanced accuracy on the training pairs."""
    candidates = np.unique(np.round(train.scores, 4))
    if len(candidates) > 2000:
        candidates = np.quantile(train.scores, np.linspace(0, 1, 2001))
    accuracies = [train.balanced_accuracy(float(t)) for t in candidates]
    return round(float(candidates[int(np.argmax(accuracies))]), 4)


def report(train: Scored, dev: Scored, threshold: float | None = None) -> dict[str, Any]:
    """The numbers for one method: AUCs on dev, threshold chosen on train, accuracy on dev."""
    chosen = best_threshold(train) if threshold is None else threshold
    return {
        "threshold": chosen,
        "dev": {
            "auc_all": dev.auc(), **{f"auc_{k}": dev.auc(k) for k in NEGATIVE_KINDS},
            "balanced_accuracy": dev.balanced_accuracy(chosen),
            "support_recall": dev.rate_above(chosen, "support"),
            **{f"{k}_passed": dev.rate_above(chosen, k) for k in NEGATIVE_KINDS},
            "expected_calibration_error": dev.ece(),
        },
        "train": {"auc_all": train.auc(), "balanced_accuracy": train.balanced_accuracy(chosen)},
    }


def _fit(features: tuple[str, ...], x: np.ndarray, y: np.ndarray, embedder: str,
         trained_on: str) -> SupportModel:
    """A class-balanced logistic regression on standardised ``x``; threshold 0.5 until set."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    fit = LogisticRegression(class_weight="balanced", C=1.0, max_iter=1000)
    fit.fit((x - mean) / scale, y)
    return SupportModel(features, tuple(np.round(mean, 6)), tuple(np.round(scale, 6)),
                        tuple(np.round(fit.coef_[0], 6)), round(float(fit.intercept_[0]), 6),
                        0.5, embedder, trained_on)


def train(scorer: SupportScorer, pairs: Sequence[Pair], embedder: str,
          trained_on: str) -> SupportModel:
    """A balanced logistic regression over the support features of the training pairs."""
    x = scorer.features([(p.claim, p.passage) for p in pairs])
    y = np.array([p.positive for p in pairs])
    model = _fit(FEATURES, x, y, embedder, trained_on)
    chosen = best_threshold(Scored(model.predict(x), y, np.array([p.kind for p in pairs])))
    return replace(model, threshold=chosen)


def gate_data(scorer: SupportScorer, claims: Sequence[Claim],
              passages: Callable[[str], list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The gate's features for each claim against the passages retrieved for it, and whether
    the claim is answerable (SUPPORT or REFUTE); claims that retrieve nothing are left out."""
    rows, labels = [], []
    for c in claims:
        found = passages(c.claim)
        if found:
            rows.append(gate_features(scorer, c.claim, found))
            labels.append(c.verdict != "NEI")
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(GATE_FEATURES)), np.array(labels)


def train_gate(x: np.ndarray, answerable: np.ndarray, embedder: str,
               trained_on: str) -> SupportModel:
    """A balanced logistic regression; its threshold lets ``ANSWERABLE_LET_THROUGH`` of the
    answerable training claims through (the gate's errors cost answers, so they are capped)."""
    model = _fit(GATE_FEATURES, x, answerable, embedder, trained_on)
    scores = model.predict(x)[answerable]
    return replace(model, threshold=round(float(np.quantile(scores, 1 - ANSWERABLE_LET_THROUGH)), 4))


def gate_report(model: SupportModel, x: np.ndarray, answerable: np.ndarray,
                threshold: float | None = None) -> dict[str, Any]:
    """How the gate sorts claims: AUC (answerable vs not), and what its threshold refuses."""
    t = model.threshold if threshold is None else threshold
    scores = model.predict(x)
    refused = scores < t
    nei = ~answerable
    f1 = 2 * (refused & nei).sum() / (refused.sum() + nei.sum()) if nei.any() else None
    return {
        "claims": int(len(answerable)), "unanswerable": int(nei.sum()), "threshold": t,
        "auc": round(float(roc_auc_score(answerable, scores)), 4) if nei.any() and answerable.any()
        else None,
        "unanswerable_refused": round(float(refused[nei].mean()), 4) if nei.any() else None,
        "answerable_refused": round(float(refused[answerable].mean()), 4)
        if answerable.any() else None,
        "refusal_f1_gate_alone": None if f1 is None else round(float(f1), 4),
    }


def methods(embed: Callable[[Sequence[str]], np.ndarray], model: SupportModel,
            verifier: Verifier | None) -> dict[str, SupportScorer]:
    """The support functions to compare: the earlier similarity score, the learned one, and the
    claim verifier when one is configured."""
    out = {"similarity": SupportScorer(embed, method="similarity"),
           "learned": SupportScorer(embed, method="learned", model=model)}
    if verifier is not None:
        out["verifier"] = SupportScorer(embed, verifier)
    return out


def html_report(summary: dict[str, Any], curves: dict[str, Scored]) -> str:
    from eval.report import figure, page, table

    results: dict[str, dict[str, Any]] = summary["methods"]
    rows = [[name, r["threshold"], r["dev"]["auc_contradiction"], r["dev"]["auc_unsupported"],
             r["dev"]["auc_all"], r["dev"]["balanced_accuracy"], r["dev"]["support_recall"],
             r["dev"]["contradiction_passed"], r["dev"]["unsupported_passed"]]
            for name, r in results.items()]
    header = ["method", "threshold (train)", "AUC support vs contradiction",
              "AUC support vs unsupported", "AUC all", "balanced accuracy", "support passed",
              "contradiction passed", "unsupported passed"]
    figures = []
    for kind in NEGATIVE_KINDS:
        def draw(ax, kind=kind) -> None:  # type: ignore[no-untyped-def]
            for name, s in curves.items():
                fpr, tpr = s.curve(kind)
                ax.plot(fpr, tpr, label=f"{name} (AUC {s.auc(kind)})")
            ax.plot([0, 1], [0, 1], ls=":", color="grey")
            ax.set_xlabel(f"false positive rate ({kind})")
            ax.set_ylabel("true positive rate (support)")
            ax.legend(loc="lower right", fontsize=8)
        figures.append(figure(draw, f"ROC on SciFact dev: support vs {kind}"))

    def reliability(ax) -> None:  # type: ignore[no-untyped-def]
        for name, s in curves.items():
            observed, predicted = s.reliability()
            ax.plot(predicted, observed, marker="o", label=f"{name} (ECE {s.ece()})")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set_xlabel("score (mean in bin)")
        ax.set_ylabel("share of pairs that are support")
        ax.legend(loc="upper left", fontsize=8)
    figures.append(figure(reliability, "Reliability on SciFact dev: is a score of 0.8 right "
                                       "8 times in 10? (10 equal-width bins)"))
    counts = summary["pairs"]
    return page("Sentence-support validation (SciFact)", [
        f"<p>Pairs: {counts}. Abstracts dropped because the sentence split disagreed with the "
        f"evidence indices: {summary['dropped_docs']}.</p>",
        table(header, rows), *figures])
