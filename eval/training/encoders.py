"""The two training jobs behind ``rag train``: what data each encoder reads, how it is held
out, and the model card each writes. The shipped models are these jobs' output, packed
(rag/bundled); the cards name the command that reproduces them."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from eval.scifact import SciFact
from eval.training.cards import write_card
from eval.training.cross_encoders import Recipe, Trained, train
from eval.training.evaluation import reranked_ndcg, verifier_metrics
from eval.training.reranker_data import Pair, Search, Synthetic, listwise_columns
from eval.training.verifier_data import LABELS, corpus_examples, verifier_examples
from rag.core.types import Hit

Tick = Callable[[], None]


def resolve_base(base: str, home: Path) -> str:
    """``bundled:all-MiniLM-L6-v2`` (the embedder's weights), ``bundled:NAME`` (a shipped
    encoder, to continue from it), or a folder or hub id."""
    if base.lower() == "bundled:all-minilm-l6-v2":
        from rag.embedding.embedder import resolve_model_path

        return resolve_model_path(base)
    from rag.bundled import resolve

    return resolve(base, home)


def _probabilities(model: Any) -> Callable[[list[tuple[str, str]]], np.ndarray]:  # noqa: ANN401
    import torch

    def predict(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(model.predict(pairs, batch_size=64, show_progress_bar=False,
                                        activation_fn=torch.nn.Softmax(dim=-1)), dtype=np.float64)

    return predict


def _scores(model: Any) -> Callable[[list[tuple[str, str]]], np.ndarray]:  # noqa: ANN401
    def predict(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(model.predict(pairs, batch_size=64, show_progress_bar=False),
                          dtype=np.float64)

    return predict


@dataclass
class HeldOut:
    """Queries the reranker never trains on, with the candidates retrieval gives them."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, Sequence[Hit]]
    depth: int

    @classmethod
    def retrieve(cls, name: str, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                 search: Search, depth: int, tick: Tick = lambda: None) -> HeldOut:
        candidates = {}
        for qid, query in queries.items():
            candidates[qid] = list(search(query, 100))
            tick()
        return cls(name, queries, qrels, candidates, depth)

    def ndcg(self, predict: Callable[[list[tuple[str, str]]], np.ndarray] | None) -> float:
        """nDCG@10 reranked by ``predict`` (None: retrieval's own order)."""
        fused = (lambda pairs: -np.arange(len(pairs), dtype=np.float64)) if predict is None \
            else predict
        return reranked_ndcg(fused, self.queries, self.qrels, self.candidates, self.depth)


def train_reranker(recipe: Recipe, out: Path, pairs: Sequence[Pair], held_out: HeldOut,
                   card: dict[str, Any], resume: bool = False, negatives: int = 7
                   ) -> dict[str, Any]:
    """Train on ``pairs``; nDCG@10 on ``held_out`` before (retrieval alone, and the base model
    if it is a reranker already) and after each epoch. Returns the card (also written)."""
    def evaluate(model: Any) -> dict[str, float]:  # noqa: ANN401
        return {f"ndcg@10 ({held_out.name})": held_out.ndcg(_scores(model))}

    columns = (listwise_columns(pairs, negatives) if recipe.loss == "listwise" else
               {"query": [p.query for p in pairs], "passage": [p.passage for p in pairs],
                "label": [p.label for p in pairs]})
    trained = train(recipe, columns, out, evaluate, resume)
    metrics = {f"ndcg@10 {held_out.name}, retrieval alone": held_out.ndcg(None),
               **{k: v for k, v in (trained.curve[-1] if trained.curve else {}).items()
                  if k.startswith("ndcg")}}
    return _finish(trained, recipe, card, metrics, out,
                   pairs=len(pairs), positives=sum(p.label > 0 for p in pairs))


def train_verifier(recipe: Recipe, out: Path, train_data: SciFact, dev: SciFact,
                   corpus: Sequence[Sequence[str]], synthetic: int,
                   sentences: Callable[[str], list[str]], card: dict[str, Any],
                   resume: bool = False) -> dict[str, Any]:
    """Train on SciFact train claims and ``synthetic`` corpus examples; the dev AUCs
    (eval/training/evaluation.py) after each epoch."""
    examples = verifier_examples(train_data, recipe.seed) + corpus_examples(corpus, synthetic,
                                                                            recipe.seed)
    random.Random(recipe.seed).shuffle(examples)

    def evaluate(model: Any) -> dict[str, float]:  # noqa: ANN401
        return {k: v for k, v in verifier_metrics(_probabilities(model), dev, sentences).items()
                if v is not None}

    trained = train(recipe, {"evidence": [e.evidence for e in examples],
                             "claim": [e.claim for e in examples],
                             "label": [e.label for e in examples]}, out, evaluate, resume)
    counts = {label: sum(e.label == i for e in examples) for i, label in enumerate(LABELS)}
    metrics = dict(trained.curve[-1]) if trained.curve else {}
    metrics.pop("epoch", None)
    metrics.pop("train_loss", None)
    card = {**card, "threshold": support_threshold(trained.folder, train_data)}
    return _finish(trained, recipe, card, metrics, out, examples=len(examples), **counts)


def support_threshold(folder: Path, train_data: SciFact) -> float:
    """P(supports) from which a sentence counts as supported: the one with the best balanced
    accuracy on SciFact train's support pairs, as ``rag eval support`` chooses every method's."""
    from eval.scifact import support_pairs
    from eval.support import best_threshold, scored
    from rag.grounding.support import VERIFIER_THRESHOLD, SupportScorer
    from rag.grounding.verifier import Verifier

    pairs = support_pairs(train_data)
    if len({p.positive for p in pairs}) < 2:  # one class only (tiny data): nothing to choose
        return VERIFIER_THRESHOLD
    return best_threshold(scored(pairs, SupportScorer(None, Verifier(str(folder))).scores))


def _finish(trained: Trained, recipe: Recipe, card: dict[str, Any], metrics: dict[str, Any],
            out: Path, **counts: int) -> dict[str, Any]:
    card = {**card, "recipe": recipe.to_dict(), "counts": counts, "metrics": metrics,
            "curve": trained.curve, "seconds": trained.seconds, "machine": trained.machine,
            "date": time.strftime("%Y-%m-%d")}
    write_card(trained.folder, card)
    return card


def kept(items: Sequence[Synthetic]) -> tuple[list[Synthetic], dict[str, int]]:
    """The synthetic questions whose passage retrieval found, and how many were dropped why."""
    good = [i for i in items if i.question and i.rank is not None]
    return good, {"written": len(items), "no question": sum(not i.question for i in items),
                  "passage not retrieved": sum(bool(i.question) and i.rank is None for i in items),
                  "kept": len(good)}


def split_synthetic(items: Sequence[Synthetic], held_share: float, seed: int
                    ) -> tuple[list[Synthetic], list[Synthetic]]:
    """Train and held-out questions, split by document (no held-out passage's document is
    trained on)."""
    docs = sorted({i.passage.chunk.doc_id for i in items})
    random.Random(seed).shuffle(docs)
    held = set(docs[:max(1, round(len(docs) * held_share))]) if len(docs) > 1 else set()
    return ([i for i in items if i.passage.chunk.doc_id not in held],
            [i for i in items if i.passage.chunk.doc_id in held])


def synthetic_held_out(items: Sequence[Synthetic], search: Search, depth: int) -> HeldOut:
    """Each held-out question's own passage as its one relevant 'document' (by chunk id)."""
    queries = {str(n): i.question for n, i in enumerate(items)}
    qrels = {str(n): {i.passage.chunk_id: 1} for n, i in enumerate(items)}
    candidates = {}
    for n, i in enumerate(items):
        hits = list(search(i.question, 100))
        for hit in hits:  # judged by chunk: the question was written for one passage
            hit.chunk = replace(hit.chunk, doc_key=hit.chunk_id)
        candidates[str(n)] = hits
    return HeldOut("synthetic questions", queries, qrels, candidates, depth)
