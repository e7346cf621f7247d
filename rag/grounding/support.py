"""Sentence support: how well a passage backs a sentence, as a score in [0, 1] and a threshold,
and how strongly it contradicts it.

The default is the claim verifier trained here (rag/grounding/verifier.py, ``rag train
verifier``): the probability that the passage's best sentence supports the sentence, and the
highest probability that one of its sentences contradicts it. Where the verifier is off or
missing, the fallback is a logistic regression over a few measured signals (embedding
similarity to the passage's best sentence, content-word overlap, numbers missing from the
passage, negation and direction words that disagree), trained on SciFact's train claims by ``rag
eval support --train`` and validated on its dev claims (eval/support.py; docs/evaluation.md has
the numbers); ``similarity`` is the earlier score, the mean of cosine and overlap. Every method
is held under its threshold when the passage lacks a quantity the sentence states, or no
retrieved passage mentions a name it uses (``specifics_found``): a rule, not a learned weight,
measured on questions with invented facts.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.core.text import sentence_spans
from rag.grounding.verifier import Verifier

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
# A quantity a sentence states: a number standing alone ("2048", "28.4", "10%", "1,000"), not
# one inside a name ("IL-10", "3-kinase", "MEK 1/2", "P100"; names are checked as names).
QUANTITY = re.compile(r"(?<![\w./-])\d+(?:[.,]\d+)*(?=%|[\s,;:)\]]|\.(?!\d)|$)")
DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
# What names a thing: a capitalised word past the first, a word mixing letters and digits
# ("GPT-3", "P100s", "BRCA1"), a word inside `code`.
TOKEN = re.compile(r"[A-Za-z0-9][\w'-]*")
NAMED = re.compile(r"[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]")
CODE = re.compile(r"`([^`\n]+)`")
MODEL_FILE = Path(__file__).with_name("support_model.json")
SIMILARITY_THRESHOLD = 0.45
VERIFIER_THRESHOLD = 0.5
CONTRADICTION_THRESHOLD = 0.5
# No overlap with the best sentence beside overlap with the whole passage: on the training pairs
# (mostly one-sentence passages) the two are nearly equal, and the fit gave them opposite signs,
# so a verbatim sentence scored below a looser one (found through attribution; measured out).
FEATURES = ("cos_best", "overlap", "numbers_missing", "negation_mismatch", "direction_conflict")

Embed = Callable[[Sequence[str]], np.ndarray]


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


def _name_key(word: str) -> str:
    word = word.lower().removesuffix("'s").rstrip("'")
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def names(sentence: str) -> set[str]:
    """The specific things a sentence names (see NAMED), compared case-blind, plural-blind."""
    tokens = TOKEN.findall(CODE.sub(" ", sentence))
    named = {_name_key(t) for i, t in enumerate(tokens)
             if not t.isdigit() and (i > 0 and t[0].isupper() or NAMED.search(t))}
    return named | {_name_key(t) for code in CODE.findall(sentence) for t in TOKEN.findall(code)
                    if not t.isdigit()}


def name_keys(text: str) -> set[str]:
    """Every word of ``text`` as ``names`` compares them: what a passage mentions."""
    return {_name_key(t) for t in TOKEN.findall(text)}


def specifics_found(sentence: str, passage: str, mentioned: set[str] | None = None) -> float:
    """Share of the sentence's quantities that the passage states (among its digits, or as
    words up to twenty), times the share of the names it uses that are ``mentioned``
    (``name_keys`` of every passage the answer was written from, and their titles). The learned
    scorer was trained on SciFact, where answers seldom invent a number or a name; on the papers
    questions it passed "5 to 30K GPU memory" and "the Python library `pybwt`" (invented), and
    a number cited to a passage that does not hold it."""
    wanted = {n.replace(",", "") for n in QUANTITY.findall(sentence)}
    have = {n.replace(",", "") for n in DIGITS.findall(passage)} | {
        NUMBER_WORDS[w.lower()] for w in WORD.findall(passage) if w.lower() in NUMBER_WORDS}
    share = len(wanted & have) / len(wanted) if wanted else 1.0
    named = names(sentence)
    if mentioned is not None and named:
        share *= len(named & mentioned) / len(named)
    return share


def remembering(embed: Embed, size: int | None = 4096) -> Embed:
    """``embed`` that keeps the vectors of the last ``size`` distinct texts (None: all): the
    answerability gate and the citation check read the same passage sentences, follow-up
    questions retrieve the same passages, and a claim meets many passages in evaluation."""
    memory: OrderedDict[str, np.ndarray] = OrderedDict()
    lock = threading.Lock()

    def embed_remembered(texts: Sequence[str]) -> np.ndarray:
        with lock:
            known = {t: memory[t] for t in texts if t in memory}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            known.update(zip(todo, embed(todo), strict=True))
        with lock:
            for t in dict.fromkeys(texts):
                memory[t] = known[t]
                memory.move_to_end(t)
            while size is not None and len(memory) > size:
                memory.popitem(last=False)
        return np.stack([known[t] for t in texts])

    return embed_remembered


def sentences_of(passage: str) -> list[str]:
    return [passage[a:b] for a, b in sentence_spans(passage)] or [passage]


@dataclass(frozen=True)
class SupportModel:
    """A logistic regression over ``features`` (standardised), with the threshold chosen on the
    training data; stored as JSON beside this module and rebuilt by ``rag eval support`` (the
    answerability gate's, over two of them, by ``rag eval gate``)."""

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
    def load(cls, path: Path = MODEL_FILE, features: tuple[str, ...] = FEATURES) -> SupportModel:
        raw = json.loads(path.read_text(encoding="utf-8"))
        model = cls(**{k: tuple(v) if isinstance(v, list) else v  # type: ignore[arg-type]
                       for k, v in raw.items()})
        if model.features != features:
            raise ValueError(f"{path}: trained on features {model.features}, not {features}; "
                             "rebuild it with rag eval support --train (gate: rag eval gate)")
        return model


class SupportScorer:
    """Support of a sentence by a passage in [0, 1], and the threshold above which it counts;
    with the verifier, also how strongly a passage contradicts it.

    ``method``: ``learned`` (default without a verifier) or ``similarity``; a ``verifier``
    wins."""

    def __init__(self, embed: Embed | None, verifier: Verifier | None = None,
                 method: str = "learned", threshold: float | None = None,
                 model: SupportModel | None = None,
                 contradiction_threshold: float = CONTRADICTION_THRESHOLD) -> None:
        if method not in ("learned", "similarity"):
            raise ValueError(f"unknown support method {method!r} (learned or similarity)")
        self.embed, self.verifier = embed, verifier
        self.method = "verifier" if verifier is not None else method
        if self.method == "learned" and embed is None:
            self.method = "similarity"  # the learned model needs embeddings
        self.model = model or (SupportModel.load() if self.method == "learned" else None)
        default = {"verifier": verifier.threshold if verifier else VERIFIER_THRESHOLD,
                   "similarity": SIMILARITY_THRESHOLD}.get(
            self.method, self.model.threshold if self.model else SIMILARITY_THRESHOLD)
        self.threshold = default if threshold is None else threshold
        self.contradiction_threshold = contradiction_threshold

    def supported(self, score: float) -> bool:
        return score >= self.threshold

    def contradicted(self, contradiction: float) -> bool:
        return self.verifier is not None and contradiction >= self.contradiction_threshold

    def scores(self, pairs: list[tuple[str, str]], context: str | None = None) -> list[float]:
        """Support of each (sentence, passage) pair; ``context``: the text of every passage
        the sentences were written from (with titles), for the names check."""
        return [support for support, _ in self.judgements(pairs, context)]

    def judgements(self, pairs: list[tuple[str, str]], context: str | None = None
                   ) -> list[tuple[float, float]]:
        """(support, contradiction) of each (sentence, passage) pair; contradiction is 0 without
        the verifier."""
        if not pairs:
            return []
        contradiction = [0.0] * len(pairs)
        if self.verifier is not None:
            judged = self.verifier.judge([(s, sentences_of(p)) for s, p in pairs])
            raw = [j.support for j in judged]
            contradiction = [j.contradiction for j in judged]
        elif self.method == "learned":
            assert self.model is not None
            raw = [float(p) for p in self.model.predict(self.features(pairs))]
        else:
            raw = [overlap(s, p) for s, p in pairs]
            if self.embed is not None:
                cos = self._cosines(pairs)
                raw = [0.5 * float(c) + 0.5 * w for c, w in zip(cos, raw, strict=True)]
        mentioned = None if context is None else name_keys(context)
        return [(round(self._below_unless_specific(r, specifics_found(s, p, mentioned)), 6),
                 round(c, 6)) for r, c, (s, p) in zip(raw, contradiction, pairs, strict=True)]

    def _below_unless_specific(self, score: float, found: float) -> float:
        """A pair with a specific missing scores under the threshold, whatever its score, but
        keeps its order among such pairs (on SciFact dev pairs the rule costs 0.004 AUC this way,
        0.011 with such pairs scored zero)."""
        return score if found >= 1.0 else min(score, self.threshold) * (1.0 + found) / 2.0

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
