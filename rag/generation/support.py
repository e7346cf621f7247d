"""Sentence support: how well a passage backs a sentence, as a score in [0, 1] and a threshold.

No NLI or hallucination-detector weights can be installed here, so the default scorer is a
logistic regression over a few measured signals (embedding similarity to the passage's best
sentence, content-word overlap, numbers missing from the passage, negation and direction words
that disagree), trained on SciFact's train claims by ``rag eval support --train`` and validated
on its dev claims (eval/support.py; docs/evaluation.md has the numbers). ``similarity`` is the
earlier score, the mean of cosine and overlap; an NLI cross-encoder, when configured, replaces
both with its entailment probability.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ingest.chunking import sentence_spans

WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
NEGATION = re.compile(
    r"\b(?:not|no|never|none|neither|nor|without|cannot|lacks?|lacking|absence|absent|fails?|"
    r"failed|unable|ineffective|unaffected|unrelated|\w+n't)\b", re.IGNORECASE)
UP = re.compile(r"\b(?:increas\w*|higher|more|greater|elevat\w*|enhanc\w*|promot\w*|rais\w*|"
                r"upregulat\w*|up-regulat\w*|activat\w*|improv\w*|induc\w*|gains?|rise|rises|"
                r"stimulat\w*|accelerat\w*|longer|larger)\b", re.IGNORECASE)
DOWN = re.compile(r"\b(?:decreas\w*|lower|less|fewer|reduc\w*|inhibit\w*|suppress\w*|"
                  r"downregulat\w*|down-regulat\w*|impair\w*|declin\w*|loss|diminish\w*|"
                  r"prevent\w*|attenuat\w*|block\w*|shorter|smaller|drops?)\b", re.IGNORECASE)
MODEL_FILE = Path(__file__).with_name("support_model.json")
SIMILARITY_THRESHOLD = 0.45
NLI_THRESHOLD = 0.5
# No overlap with the best sentence beside overlap with the whole passage: on the training pairs
# (mostly one-sentence passages) the two are nearly equal, and the fit gave them opposite signs,
# so a verbatim sentence scored below a looser one (found through attribution; measured out).
FEATURES = ("cos_best", "overlap", "numbers_missing", "negation_mismatch", "direction_conflict")

Embed = Callable[[Sequence[str]], np.ndarray]
Nli = Callable[[list[tuple[str, str]]], list[float]]


@functools.cache
def _stem_and_stopwords() -> tuple[Callable[[str], str], frozenset[str]]:
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    return Stemmer.Stemmer("english").stemWord, frozenset(STOPWORDS_EN)


def content_words(text: str) -> set[str]:
    """Stemmed, lower-cased words that carry meaning (English stopwords dropped)."""
    stem, stop = _stem_and_stopwords()
    return {stem(w.lower()) for w in WORD.findall(text) if w.lower() not in stop}


def overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains."""
    words = content_words(sentence)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def sentences_of(passage: str) -> list[str]:
    return [passage[a:b] for a, b in sentence_spans(passage)] or [passage]


@dataclass(frozen=True)
class SupportModel:
    """A logistic regression over ``FEATURES`` (standardised), with the threshold chosen on the
    training pairs; stored as JSON beside this module and rebuilt by ``rag eval support``."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    embedder: str
    trained_on: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> SupportModel:
        raw = json.loads(path.read_text(encoding="utf-8"))
        model = cls(**{k: tuple(v) if isinstance(v, list) else v  # type: ignore[arg-type]
                       for k, v in raw.items()})
        if model.features != FEATURES:
            raise ValueError(f"{path}: trained on features {model.features}, not {FEATURES}; "
                             "rebuild it with rag eval support --train")
        return model


class SupportScorer:
    """Support of a sentence by a passage in [0, 1], and the threshold above which it counts.

    ``method``: ``learned`` (default), ``similarity``, or an ``nli`` callable (it wins)."""

    def __init__(self, embed: Embed | None, nli: Nli | None = None, method: str = "learned",
                 threshold: float | None = None, model: SupportModel | None = None) -> None:
        if method not in ("learned", "similarity"):
            raise ValueError(f"unknown support method {method!r} (learned or similarity)")
        self.embed, self.nli = embed, nli
        self.method = "nli" if nli is not None else method
        if self.method == "learned" and embed is None:
            self.method = "similarity"  # the learned model needs embeddings
        self.model = model or (SupportModel.load() if self.method == "learned" else None)
        default = {"nli": NLI_THRESHOLD, "similarity": SIMILARITY_THRESHOLD}.get(
            self.method, self.model.threshold if self.model else SIMILARITY_THRESHOLD)
        self.threshold = default if threshold is None else threshold

    def supported(self, score: float) -> bool:
        return score >= self.threshold

    def scores(self, pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        if self.nli is not None:
            return [float(s) for s in self.nli(pairs)]
        if self.method == "learned":
            assert self.model is not None
            return [round(float(p), 6) for p in self.model.predict(self.features(pairs))]
        lexical = [overlap(s, p) for s, p in pairs]
        if self.embed is None:
            return lexical
        cos = self._cosines(pairs)
        return [0.5 * float(c) + 0.5 * w for c, w in zip(cos, lexical, strict=True)]

    def _cosines(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cosine of each pair, every distinct text embedded once (a claim meets many passages)."""
        assert self.embed is not None
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        vecs = self.embed(texts)
        row = {t: i for i, t in enumerate(texts)}
        left = vecs[[row[s] for s, _ in pairs]]
        right = vecs[[row[p] for _, p in pairs]]
        return np.clip((left * right).sum(axis=1), 0.0, 1.0)

    def features(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One row of ``FEATURES`` per (sentence, passage) pair."""
        split = [sentences_of(p) for _, p in pairs]
        flat = [(s, part) for (s, _), parts in zip(pairs, split, strict=True) for part in parts]
        cos = self._cosines(flat)
        rows, at = [], 0
        for (sentence, passage), parts in zip(pairs, split, strict=True):
            local = cos[at:at + len(parts)]
            at += len(parts)
            best = parts[int(np.argmax(local))]
            rows.append(_row(sentence, passage, best, float(local.max())))
        return np.asarray(rows, dtype=np.float64).reshape(len(pairs), len(FEATURES))


def _row(sentence: str, passage: str, best: str, cos_best: float) -> list[float]:
    wanted = numbers(sentence)
    missing = len(wanted - numbers(passage)) / len(wanted) if wanted else 0.0
    negated = bool(NEGATION.search(sentence)) != bool(NEGATION.search(best))
    up_s, down_s = bool(UP.search(sentence)), bool(DOWN.search(sentence))
    up_b, down_b = bool(UP.search(best)), bool(DOWN.search(best))
    conflict = (up_s and not down_s and down_b and not up_b) or (
        down_s and not up_s and up_b and not down_b)
    return [cos_best, overlap(sentence, passage), missing, float(negated), float(conflict)]
