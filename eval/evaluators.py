"""Evaluators in the shape of sentence-transformers' own: built from labelled data, called with
what to measure, they return a dict of results, and ``primary_metric`` names the one to watch.
``rag eval`` only parses its options, calls one, writes the dict and prints it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eval import support
from eval.retrieval import BeirDataset, fusion_sweep
from eval.scifact import SciFact, support_pairs
from rag.grounding.answerability import GATE_FEATURES, GATE_FILE, gate_passage
from rag.grounding.support import SupportModel, SupportScorer, remembering
from rag.service.pipeline import Pipeline

Tick = Callable[[], None]


class FusionEvaluator:
    """Hybrid retrieval's measures with each fusion method (score, rrf) at dense weights 0,
    0.1, ..., 1 (BM25's is 1 minus it) on a BEIR split: the best is the fusion to set as
    retrieval.fusion and retrieval.dense_weight for the embedder (``MEASURED_FUSION``)."""

    primary_metric = "nDCG@10"
    weights = [round(0.1 * i, 1) for i in range(11)]
    # Settings this close to the best are a tie (SciFact train's 809 queries measure nDCG@10
    # to about +-0.01); a tie goes to the weight nearest even, which leans on neither list.
    tie = 0.002

    def __init__(self, data: BeirDataset, name: str, split: str) -> None:
        self.data, self.name, self.split = data, name, split

    def __call__(self, pipeline: Pipeline, tick: Tick = lambda: None) -> dict[str, Any]:
        sweep = fusion_sweep(pipeline, self.data, self.weights, tick=tick)
        scores = {(m, w): sweep[m][w][self.primary_metric] for m in sweep for w in self.weights}
        top = max(scores.values())
        method, weight = max((mw for mw, x in scores.items() if x >= top - self.tie),
                             key=lambda mw: (-abs(mw[1] - 0.5), scores[mw]))
        return {"dataset": self.name, "split": self.split, "queries": len(self.data.queries),
                "embedder": pipeline.embedder.name, "rrf_k": pipeline.settings.retrieval.rrf_k,
                "best": {"fusion": method, "dense_weight": weight},
                "methods": {m: {str(w): x for w, x in by_weight.items()}
                            for m, by_weight in sweep.items()}}


class SupportEvaluator:
    """Sentence-support functions on SciFact claim-sentence pairs. Positives: a claim and its
    SUPPORT evidence; negatives: its REFUTE evidence (contradiction) and the other sentences of
    the cited abstract (unsupported). Thresholds are chosen on train (the verifier's when it
    was trained: its card) and reported on dev, with ROC-AUC and calibration."""

    primary_metric = "auc_all"

    def __init__(self, folder: Path, limit: int | None = None) -> None:
        self.folder = folder
        self.splits = {s: SciFact.load(folder, s) for s in ("train", "dev")}
        for data in self.splits.values():
            if limit:
                data.claims = data.claims[:limit]
        self.pairs = {name: support_pairs(data) for name, data in self.splits.items()}

    def train(self, scorer: SupportScorer, embedder: str) -> SupportModel:
        """The learned support model, fitted on the train pairs only."""
        return support.train(scorer, self.pairs["train"], embedder,
                             f"SciFact train ({len(self.pairs['train'])} pairs)")

    def __call__(self, scorers: Mapping[str, SupportScorer], embedder: str,
                 tick: Tick = lambda: None) -> tuple[dict[str, Any], dict[str, support.Scored]]:
        """The summary, and each method's dev scores (for the report's curves)."""
        results, curves = {}, {}
        for name, scorer in scorers.items():
            train_scored = support.scored(self.pairs["train"], scorer.scores)
            tick()
            curves[name] = support.scored(self.pairs["dev"], scorer.scores)
            tick()
            # The verifier's threshold was chosen on train when it was trained (its card); the
            # specifics rule caps scores at the threshold in use, so choosing again would drift.
            results[name] = support.report(train_scored, curves[name],
                                           scorer.threshold if name == "verifier" else None)
        summary = {
            "dataset": str(self.folder), "embedder": embedder,
            "pairs": {s: {k: sum(p.kind == k for p in ps)
                          for k in ("support", *support.NEGATIVE_KINDS)}
                      for s, ps in self.pairs.items()},
            "dropped_docs": {s: len(d.dropped_docs) for s, d in self.splits.items()},
            "methods": results,
        }
        return summary, curves


class GateEvaluator:
    """The answerability gate on SciFact claims: NEI claims are the ones it should refuse.
    Each claim's features are measured against the passages retrieved for it once; the gate
    is then fitted (``train``) or reported (call) on them, train and dev apart."""

    primary_metric = "auc"

    def __init__(self, folder: Path, pipeline: Pipeline, k: int | None,
                 tick: Tick = lambda: None) -> None:
        self.folder, self.pipeline, self.k = folder, pipeline, k
        self.splits = {s: SciFact.load(folder, s) for s in ("train", "dev")}
        scorer = SupportScorer(remembering(pipeline.embedder.embed_documents, None))

        def passages(claim: str) -> list[str]:
            return [gate_passage(h.chunk) for h in pipeline.search(claim, k=k).hits]

        self.data = {}
        for name, split in self.splits.items():
            self.data[name] = support.gate_data(scorer, split.claims, passages)
            tick()

    def train(self) -> SupportModel:
        r = self.pipeline.settings.retrieval
        return support.train_gate(*self.data["train"], self.pipeline.embedder.name,
                                  f"SciFact train ({len(self.data['train'][1])} claims, top "
                                  f"{self.k or r.k} {r.mode})")

    @staticmethod
    def bundled() -> SupportModel:
        return SupportModel.load(GATE_FILE, GATE_FEATURES)

    def __call__(self, model: SupportModel, threshold: float) -> dict[str, Any]:
        p = self.pipeline
        return {"dataset": str(self.folder), "kb": p.kb.name, "embedder": p.embedder.name,
                "gate_embedder": model.embedder, "k": self.k or p.settings.retrieval.k,
                **{name: support.gate_report(model, *xy, threshold)
                   for name, xy in self.data.items()}}
