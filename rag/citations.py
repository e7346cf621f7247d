"""Parse [n] citations, map them to sources, and score how well each sentence is supported."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ingest.chunking import sentence_spans
from rag.prompting import REFUSAL, Source
from rag.support import SupportScorer

CITATION = re.compile(r"\[(\s*\d+(?:\s*(?:[,;]|[-–])\s*\d+)*\s*)\]")


@dataclass
class Sentence:
    text: str
    citations: list[int]
    chunk_ids: list[str]
    support: float | None = None
    supported: bool | None = None
    flags: list[str] = field(default_factory=list)
    suggested: int | None = None  # for an uncited sentence: the source that best supports it
    # cited source n -> [start, end] of the passage sentence that supports this one best
    evidence: dict[int, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group.strip()):
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            numbers.extend(range(a, b + 1) if 0 < b - a < 20 else [a, b])
        elif part.isdigit():
            numbers.append(int(part))
    return numbers


def split_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """Sentences with their citation numbers; citations right after a full stop ("... end. [2]")
    belong to the sentence before them."""
    out: list[tuple[str, list[int]]] = []
    for a, b in sentence_spans(answer):
        text = answer[a:b]
        lead = re.match(rf"(?:\s*{CITATION.pattern})+", text)
        if lead and out:
            numbers = [n for m in CITATION.finditer(lead.group()) for n in parse_numbers(m.group(1))]
            out[-1] = (out[-1][0] + " " + lead.group().strip(), out[-1][1] + numbers)
            text = text[lead.end():].strip()
            if not text.strip(" .;,"):
                continue
        out.append((text, [n for m in CITATION.finditer(text) for n in parse_numbers(m.group(1))]))
    return out


@dataclass
class CitationReport:
    sentences: list[Sentence]
    invalid: list[int]
    refused: bool
    warnings: list[str]


def check(answer: str, sources: Sequence[Source], scorer: SupportScorer,
          truncated: bool = False) -> CitationReport:
    by_n = {s.n: s for s in sources}
    sentences: list[Sentence] = []
    invalid: list[int] = []
    pairs: list[tuple[int, int, str]] = []  # (sentence index, cited source, claim)
    orphans: list[tuple[int, int, str, str]] = []  # uncited sentence x every source
    parsed = split_sentences(answer)
    refused = REFUSAL.rstrip(".").lower() in answer.lower()
    for i, (text, numbers) in enumerate(parsed):
        valid = [n for n in dict.fromkeys(numbers) if n in by_n]
        invalid.extend(n for n in numbers if n not in by_n)
        s = Sentence(text, valid, [by_n[n].hit.chunk_id for n in valid])
        if truncated and i == len(parsed) - 1:
            s.flags.append("cut off at the token limit")
        if REFUSAL.rstrip(".").lower() in text.lower():
            s.flags.append("refusal")
        elif not valid:
            s.flags.append("uncited" if not numbers else "cites a source that does not exist")
            s.supported = False
            claim = CITATION.sub("", text).strip()
            orphans.extend((len(sentences), src.n, claim, src.hit.chunk.text) for src in sources)
        else:
            claim = CITATION.sub("", text).strip()
            pairs.extend((len(sentences), n, claim) for n in valid)
        sentences.append(s)
    scores = scorer.scores([(claim, by_n[n].hit.chunk.text) for _, n, claim in pairs])
    for (index, _, _), score in zip(pairs, scores, strict=True):
        s = sentences[index]
        s.support = round(max(score, s.support or 0.0), 4)
    best: dict[int, tuple[float, int]] = {}
    scored = scorer.scores([(claim, passage) for _, _, claim, passage in orphans])
    for (index, n, _, _), score in zip(orphans, scored, strict=True):
        if score > best.get(index, (-1.0, 0))[0]:
            best[index] = (score, n)
    for index, (score, n) in best.items():
        if scorer.supported(score):
            sentences[index].suggested = n
    _locate_evidence(sentences, pairs, by_n, scorer)
    for s in sentences:
        if s.support is not None:
            s.supported = scorer.supported(s.support)
            if not s.supported:
                s.flags.append("unsupported by its cited source")
    warnings = []
    if invalid:
        warnings.append(f"dropped citations to sources that do not exist: "
                        f"{sorted(set(invalid))}")
    flagged = [s for s in sentences if s.supported is False]
    if flagged:
        warnings.append(f"{len(flagged)} of {len(sentences)} sentence(s) uncited or unsupported")
    if truncated:
        warnings.append("the answer was cut off at the token limit")
    return CitationReport(sentences, sorted(set(invalid)), refused, warnings)


def _locate_evidence(sentences: list[Sentence], cited: list[tuple[int, int, str]],
                     by_n: dict[int, Source], scorer: SupportScorer) -> None:
    """For each citation, the passage sentence that best supports the claim (for highlighting)."""
    candidates: list[tuple[int, int, tuple[int, int]]] = []
    pairs: list[tuple[str, str]] = []
    for index, n, claim in cited:
        passage = by_n[n].hit.chunk.text
        for a, b in sentence_spans(passage):
            candidates.append((index, n, (a, b)))
            pairs.append((claim, passage[a:b]))
    best: dict[tuple[int, int], tuple[float, tuple[int, int]]] = {}
    for (index, n, span), score in zip(candidates, scorer.scores(pairs), strict=True):
        if score > best.get((index, n), (-1.0, (0, 0)))[0]:
            best[(index, n)] = (score, span)
    for (index, n), (_, span) in best.items():
        sentences[index].evidence[n] = list(span)


def strip_invalid(answer: str, invalid: Sequence[int]) -> str:
    """Remove citations to non-existent sources from the displayed text."""
    if not invalid:
        return answer

    def fix(match: re.Match[str]) -> str:
        keep = [n for n in parse_numbers(match.group(1)) if n not in invalid]
        return "[" + ", ".join(map(str, keep)) + "]" if keep else ""

    return CITATION.sub(fix, answer)
