"""Verifier training pairs from SciFact claims: (evidence, claim, label) with the labels
supports, contradicts and neither, one evidence sentence (or a rationale's sentences together)
against one claim, as the verifier reads answers at run time.

- supports / contradicts: a claim and its SUPPORT / REFUTE rationale; and the claim negated by
  rule (eval/training/negation.py) with the same rationale and the other label, so every piece of
  evidence is seen on both sides and no word ("not", "decreases") alone decides.
- neither: a claim and sentences of its evidence abstracts outside the rationale (same topic,
  no verdict), and sentences of the abstracts cited for claims SciFact leaves unsettled (NEI);
  negated claims with such sentences too.

A small encoder fine-tuned on these alone learns what evidence is about a claim but not which
way it points (supports vs contradicts stayed at chance, even on the training pairs). So it
first reads ``corpus_examples``: sentences of the corpus as their own claims, negated, and
beside other sentences, where the only difference between supports and contradicts is the
negation: it learns to look at polarity there, then on SciFact's real claims.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from eval.scifact import SciFact
from eval.training.negation import negate

LABELS = ("supports", "contradicts", "neither")
SUPPORTS, CONTRADICTS, NEITHER = range(3)
FLIP = {SUPPORTS: CONTRADICTS, CONTRADICTS: SUPPORTS}


@dataclass(frozen=True)
class Example:
    evidence: str
    claim: str
    label: int


def verifier_examples(data: SciFact, seed: int = 0, neither_per_abstract: int = 3,
                      negated: bool = True) -> list[Example]:
    """Every rationale of every claim (its sentences together, and each alone when the rationale
    is one sentence), their negations, and up to ``neither_per_abstract`` unrelated sentences
    per abstract, shuffled with ``seed``."""
    rng = random.Random(seed)
    out: list[Example] = []
    for claim in data.claims:
        opposite = negate(claim.claim) if negated else None
        claims = [claim.claim] + ([opposite] if opposite else [])
        for doc in dict.fromkeys([*claim.evidence, *claim.cited]):
            sentences = data.abstracts.get(doc)
            if sentences is None:
                continue
            used: set[int] = set()
            for indices, verdict in claim.evidence.get(doc, []):
                used.update(indices)
                label = SUPPORTS if verdict == "SUPPORT" else CONTRADICTS
                evidence = " ".join(sentences[i] for i in indices)
                out.append(Example(evidence, claim.claim, label))
                if opposite:
                    out.append(Example(evidence, opposite, FLIP[label]))
            others = [s for i, s in enumerate(sentences) if i not in used]
            for sentence in rng.sample(others, min(neither_per_abstract, len(others))):
                out.append(Example(sentence, rng.choice(claims), NEITHER))
    rng.shuffle(out)
    return out


def corpus_examples(abstracts: Sequence[Sequence[str]], count: int, seed: int = 0
                    ) -> list[Example]:
    """``count`` examples, a third of each label, from the sentences of ``abstracts``: a
    sentence supports itself (or its first clause), contradicts its negation, and is neither
    for another sentence of its abstract."""
    rng = random.Random(seed)
    usable = [a for a in abstracts if len(a) >= 2]
    out: list[Example] = []
    while len(out) < count and usable:
        abstract = rng.choice(usable)
        i = rng.randrange(len(abstract))
        sentence = abstract[i]
        if not 8 <= len(sentence.split()) <= 60:
            continue
        claim = _first_clause(sentence) if rng.random() < 0.5 else sentence
        opposite = negate(claim)
        if opposite is None:
            continue
        other = abstract[(i + rng.randrange(1, len(abstract))) % len(abstract)]
        out += [Example(sentence, claim, SUPPORTS), Example(sentence, opposite, CONTRADICTS),
                Example(other, rng.choice([claim, opposite]), NEITHER)]
    rng.shuffle(out)
    return out[:count]


def _first_clause(sentence: str) -> str:
    """The sentence up to its first comma or semicolon, when that leaves a claim of 6+ words."""
    head = re.split(r"[,;]\s", sentence, maxsplit=1)[0].rstrip(".")
    return head + "." if len(head.split()) >= 6 else sentence
