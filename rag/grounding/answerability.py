"""Whether the retrieved passages address a question at all, decided before generation.

The bundled models answer questions their sources do not settle by restating the closest
passage ("False. <the abstract's words>"), and every such sentence passes the support check. The
gate looks at the question instead: a logistic regression over the closest any passage in the
prompt comes to it (embedding cosine to its best sentence, share of the question's content words
it holds), trained by ``rag eval gate --train`` on SciFact train claims (answerable: SUPPORT or
REFUTE; not: NEI) with the passages rag retrieves for them. Its threshold lets through all but
one in twenty answerable training claims; below it rag answers with the refusal and spends no
generation. Calibrated on one embedder's cosines: with another the gate stays off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.core.types import Chunk
from rag.grounding.support import FEATURES, SupportModel, SupportScorer

GATE_FILE = Path(__file__).with_name("answerability_model.json")
GATE_FEATURES = ("cos_best", "overlap")  # the best over the passages of each support feature
_COLUMNS = [FEATURES.index(f) for f in GATE_FEATURES]
ANSWERABLE_LET_THROUGH = 0.95  # share of answerable training claims above the threshold
# Words that make a question of a statement and that no passage needs to hold ("What is the
# Burrows-Wheeler transform?" asks about the transform, not about "what").
QUESTION_WORDS = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how)\b",
                            re.IGNORECASE)


def gate_passage(chunk: Chunk) -> str:
    """A passage as the gate reads it: with its title (the paper that defines a term may never
    spell it out in the passage, as retrieval, which embeds the title, already knows)."""
    return f"{chunk.title}\n\n{chunk.text}" if chunk.title else chunk.text


def gate_features(scorer: SupportScorer, query: str, passages: Sequence[str]) -> np.ndarray:
    """``GATE_FEATURES`` of a query (question words dropped) against its passages
    (``gate_passage``): each feature's best over the passages."""
    statement = " ".join(QUESTION_WORDS.sub(" ", query).split()) or query
    return scorer.features([(statement, p) for p in passages])[:, _COLUMNS].max(axis=0)


class AnswerabilityGate:
    """P(some passage addresses the query) and the threshold under which rag refuses."""

    def __init__(self, scorer: SupportScorer, model: SupportModel,
                 threshold: float | None = None) -> None:
        self.scorer, self.model = scorer, model
        self.threshold = model.threshold if threshold is None else threshold

    @classmethod
    def shipped(cls, scorer: SupportScorer, embedder: str,
                threshold: float | None = None) -> AnswerabilityGate | None:
        """The bundled gate, or None when it was trained with another embedder (or none)."""
        model = SupportModel.load(GATE_FILE, GATE_FEATURES)
        if scorer.embed is None or model.embedder != embedder:
            return None
        return cls(scorer, model, threshold)

    def score(self, query: str, passages: Sequence[str]) -> float:
        x = gate_features(self.scorer, query, passages)
        return round(float(self.model.predict(x[None, :])[0]), 4)

    def addressed(self, score: float) -> bool:
        return score >= self.threshold
