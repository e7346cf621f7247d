"""SciFact claims with their evidence, as support pairs and as an answer benchmark.

Claims files (``claims_train.jsonl``, ``claims_dev.jsonl``) hold ``{"id", "claim", "evidence":
{doc_id: [{"sentences": [i, ...], "label": "SUPPORT"|"REFUTE"}]}, "cited_doc_ids"}``; the
sentence indices refer to the original abstract's sentence list, which BEIR's ``corpus.jsonl``
joins into one text. Abstracts are split again with two independent splitters and kept only where
both agree and every evidence index exists (the rest are counted as dropped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eval.answers import Question
from rag.core.errors import DatasetError
from rag.grounding.support import SupportScorer

SPLITS = ("train", "dev")
VERDICTS = ("SUPPORT", "REFUTE", "NEI")
# SciFact's abstracts were split at sentence ends only (rag's chunker also splits at ":" and ";").
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[A-Z0-9])")
_SIMPLE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_SECTION = re.compile(r"\s*(?:\\n|\n)\s*")  # structured abstracts: a literal "\n" between parts


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    evidence: dict[str, list[tuple[tuple[int, ...], str]]]  # doc -> [(sentence indices, label)]
    cited: tuple[str, ...]

    @property
    def verdict(self) -> Literal["SUPPORT", "REFUTE", "NEI"]:
        labels = {label for sets in self.evidence.values() for _, label in sets}
        if not labels:
            return "NEI"
        return "REFUTE" if labels == {"REFUTE"} else "SUPPORT"


@dataclass
class SciFact:
    folder: Path
    claims: list[Claim]
    abstracts: dict[str, list[str]]  # doc id -> sentences, only where the split is trusted
    dropped_docs: list[str] = field(default_factory=list)

    @property
    def corpus(self) -> Path:
        return self.folder / "corpus.jsonl"

    @classmethod
    def load(cls, folder: Path, split: str) -> SciFact:
        if split not in SPLITS:
            raise DatasetError(f"unknown SciFact split {split!r} (choose from {', '.join(SPLITS)})")
        claims_file = folder / f"claims_{split}.jsonl"
        for needed in (claims_file, folder / "corpus.jsonl"):
            if not needed.is_file():
                raise DatasetError(f"not a SciFact folder: {needed} is missing")
        claims = [_claim(json.loads(line), claims_file, n)
                  for n, line in enumerate(claims_file.read_text(encoding="utf-8").splitlines(), 1)
                  if line.strip()]
        wanted = {d for c in claims for d in (*c.evidence, *c.cited)}
        texts = {}
        with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                if str(row["_id"]) in wanted:
                    texts[str(row["_id"])] = str(row.get("text", ""))
        highest: dict[str, int] = {}
        for c in claims:
            for doc, sets in c.evidence.items():
                highest[doc] = max([highest.get(doc, -1), *(i for s, _ in sets for i in s)])
        abstracts, dropped = {}, []
        for doc in sorted(wanted):
            sentences = split_abstract(texts.get(doc, ""))
            if sentences is None or highest.get(doc, -1) >= len(sentences):
                dropped.append(doc)
            else:
                abstracts[doc] = sentences
        return cls(folder, claims, abstracts, dropped)


def _claim(row: dict, path: Path, line: int) -> Claim:  # type: ignore[type-arg]
    try:
        evidence = {str(doc): [(tuple(int(i) for i in s["sentences"]), str(s["label"]))
                               for s in sets] for doc, sets in row["evidence"].items()}
        return Claim(str(row["id"]), str(row["claim"]), evidence,
                     tuple(str(d) for d in row.get("cited_doc_ids", [])))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}:{line}: not a SciFact claim ({exc})") from exc


def split_abstract(text: str) -> list[str] | None:
    """The abstract's sentences, or None when two splitters (one aware of quotes and brackets
    after the full stop, one not) disagree."""
    parts = _SECTION.split(text)
    ours = [s.strip() for part in parts for s in _BOUNDARY.split(part) if s.strip()]
    plain = [s.strip() for part in parts for s in _SIMPLE_BOUNDARY.split(part) if s.strip()]
    return ours if ours and len(ours) == len(plain) else None


@dataclass(frozen=True)
class Pair:
    """A claim and a passage, labelled: ``support``, ``contradiction`` or ``unsupported``."""

    claim: str
    passage: str
    kind: str

    @property
    def positive(self) -> bool:
        return self.kind == "support"


def support_pairs(data: SciFact) -> list[Pair]:
    """Positives: a claim and its SUPPORT rationale; negatives: its REFUTE rationale
    (contradiction) and every other sentence of an evidence or cited abstract (unsupported)."""
    pairs: list[Pair] = []
    for c in data.claims:
        used: dict[str, set[int]] = {}
        for doc, sets in c.evidence.items():
            sentences = data.abstracts.get(doc)
            if sentences is None:
                continue
            for indices, label in sets:
                used.setdefault(doc, set()).update(indices)
                kind = "support" if label == "SUPPORT" else "contradiction"
                pairs.append(Pair(c.claim, " ".join(sentences[i] for i in indices), kind))
        for doc in dict.fromkeys([*c.evidence, *c.cited]):
            sentences = data.abstracts.get(doc)
            for i, sentence in enumerate(sentences or []):
                if i not in used.get(doc, set()):
                    pairs.append(Pair(c.claim, sentence, "unsupported"))
    return pairs


# Of three wordings tried on 16 dev claims with the bundled 0.5B model, this one drew the most
# citations (71% of sentences, against 58% and 2%) and the right abstract most often.
CLAIM_QUESTION = "{claim} True or false?"
_NEI = re.compile(r"\b(?:no evidence|not enough|insufficient|unclear|do(?:es)? not (?:say|mention|"
                  r"address|settle|discuss|support|provide)|not supported|cannot (?:be )?determine)",
                  re.IGNORECASE)
_REFUTE = re.compile(r"^\s*(?:no|false)\b|\b(?:refut\w*|contradict\w*|is false|incorrect|untrue|"
                     r"inaccurate|not true|not correct)", re.IGNORECASE)


def claim_questions(data: SciFact) -> list[Question]:
    """Each claim as a question; the retrieval query is the claim itself. NEI claims are the
    unanswerable ones: the sources do not settle them, and the right answer says so."""
    return [Question(id=c.id, question=CLAIM_QUESTION.format(claim=c.claim), query=c.claim,
                     docs=list(c.evidence), verdict=c.verdict, unanswerable=c.verdict == "NEI")
            for c in data.claims]


def verdict_of(first_sentence: str, refused: bool) -> str:
    """The answer's verdict, by fixed rules on its first sentence: a refusal or a "not enough
    evidence" phrase ("no evidence", "does not support", "not supported") is NEI; "False", "No",
    "refutes", "contradicts", "incorrect", "not true" is REFUTE; any other answer SUPPORT."""
    if refused or _NEI.search(first_sentence):
        return "NEI"
    return "REFUTE" if _REFUTE.search(first_sentence) else "SUPPORT"


def checked_verdict(claim: str, first_sentence: str, refused: bool,
                    passages: Sequence[str], scorer: SupportScorer) -> str:
    """The verdict with rag's claim verifier: the claim itself judged against the passages the
    answer cites (all it was given if it cites none): contradicted (and more strongly than
    supported) is REFUTE, supported is SUPPORT; where the verifier is unsure, or off, the
    answer's own words decide (``verdict_of``). A refusal stays NEI."""
    own = verdict_of(first_sentence, refused)
    if refused or scorer.verifier is None or not passages:
        return own
    judged = scorer.judgements([(claim, p) for p in passages])
    support = max(j[0] for j in judged)
    contradiction = max(j[1] for j in judged)
    if scorer.contradicted(contradiction) and contradiction > support:
        return "REFUTE"
    if scorer.supported(support):
        return "SUPPORT"
    return own
