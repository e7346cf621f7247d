"""Parse [n] citations, map them to sources, and score how well each sentence is supported."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from rag.core.text import REFUSAL, sentence_spans
from rag.core.types import Source
from rag.grounding.support import SupportScorer

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
    # Citations rag attached after generation (also in ``citations``), the model's own valid
    # citations, and those of them rag removed because their passage did not support the sentence.
    attributed: list[int] = field(default_factory=list)
    model_citations: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    # cited source n -> [start, end] of the passage sentence that supports this one best
    evidence: dict[int, list[int]] = field(default_factory=dict)
    # sources whose passage contradicts the sentence (the verifier's word), when none supports it
    contradicted_by: list[int] = field(default_factory=list)

    @property
    def state(self) -> str:
        return sentence_state(self.supported, self.attributed, self.contradicted_by)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def sentence_state(supported: bool | None, attributed: Sequence[int] | None,
                   contradicted_by: Sequence[int] | None) -> str:
    """What every face shows of a checked sentence, decided here once: ``contradicted`` (a
    passage contradicts it and none supports it), ``unsupported`` (flagged), ``attributed``
    (supported once rag cited the passage the model did not), ``supported``, or ``unchecked``
    (a refusal, or no check ran)."""
    if contradicted_by:
        return "contradicted"
    if supported is False:
        return "unsupported"
    if attributed:
        return "attributed"
    return "supported" if supported else "unchecked"


def parse_numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group.strip()):
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            numbers.extend(range(a, b + 1) if 0 < b - a < 20 else [a, b])
        elif part.isdigit():
            numbers.append(int(part))
    return numbers


# A bare answer word ("Yes.", "False.") says nothing a passage could state: it is checked and
# cited with the sentence it introduces ("False. The rate rose [3]." is one claim).
_ANSWER_WORD = r"\W*(?:yes|no|true|false|correct|incorrect)\W*"
_BARE_ANSWER = re.compile(_ANSWER_WORD, re.IGNORECASE)
_BARE_LEAD = re.compile(_ANSWER_WORD + r"?[.!?:;]\s+", re.IGNORECASE)


def claim_text(sentence: str) -> str:
    """What a sentence claims, as the support function reads it: no citation markers, no bare
    answer word in front."""
    text = CITATION.sub("", _BARE_LEAD.sub("", sentence, count=1))
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


def _claim_spans(answer: str) -> list[tuple[int, int]]:
    spans = sentence_spans(answer)
    out: list[tuple[int, int]] = []
    start = None  # where a bare answer word waiting for its sentence began
    for i, (a, b) in enumerate(spans):
        a = a if start is None else start
        start = a if i + 1 < len(spans) and _BARE_ANSWER.fullmatch(answer[a:b]) else None
        if start is None:
            out.append((a, b))
    return out


def split_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """Sentences with their citation numbers; citations right after a full stop ("... end. [2]")
    belong to the sentence before them, a bare answer word to the sentence after it."""
    out: list[tuple[str, list[int]]] = []
    for a, b in _claim_spans(answer):
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


# Words that open a sentence about something named before it.
REFERS_BACK = re.compile(r"(?:it|its|this|these|they|their|them|he|she|his|her|that|those|such)\b",
                         re.IGNORECASE)


@dataclass
class CitationReport:
    sentences: list[Sentence]
    invalid: list[int]
    refused: bool
    warnings: list[str]
    grounded: bool = True  # some claim is supported by some source (or there is no claim)


def check(answer: str, sources: Sequence[Source], scorer: SupportScorer,
          truncated: bool = False, attribute: bool = True) -> CitationReport:
    """Every sentence scored against every source (one batch). With ``attribute``, a sentence
    its own citations do not support gets the source that does, marked as attributed by rag
    (ALCE's post-hoc citation, per sentence): an uncited one gains it, a wrongly cited one has
    its citations replaced. Sentences no source supports stay flagged."""
    by_n = {s.n: s for s in sources}
    sentences: list[Sentence] = []
    invalid: list[int] = []
    claims: dict[int, str] = {}  # sentence index -> its text without markers
    parsed = split_sentences(answer)
    refused = REFUSAL.rstrip(".").lower() in answer.lower()
    for i, (text, numbers) in enumerate(parsed):
        valid = [n for n in dict.fromkeys(numbers) if n in by_n]
        invalid.extend(n for n in numbers if n not in by_n)
        s = Sentence(text, valid, [by_n[n].hit.chunk_id for n in valid], model_citations=valid)
        if truncated and i == len(parsed) - 1:
            s.flags.append("cut off at the token limit")
        if REFUSAL.rstrip(".").lower() in text.lower():
            s.flags.append("refusal")
        else:
            claims[len(sentences)] = claim_text(text)
        sentences.append(s)
    keys = [(i, src.n) for i in claims for src in sources]
    context = context_of((s.hit.chunk.title, s.hit.chunk.text) for s in sources)
    judged = dict(zip(keys, scorer.judgements([(claims[i], by_n[n].hit.chunk.text)
                                               for i, n in keys], context), strict=True))
    scored = {key: support for key, (support, _) in judged.items()}
    notes = []
    for i in claims:
        s = sentences[i]
        best = max(by_n, key=lambda n: (scored[(i, n)], -n)) if by_n else None
        if s.citations:
            s.support = round(max(scored[(i, n)] for n in s.citations), 4)
            s.supported = scorer.supported(s.support)
        if s.supported:
            continue
        if best is not None and scorer.supported(scored[(i, best)]):
            if attribute:
                if s.citations:
                    notes.append(f"replaced citation {s.citations} by [{best}]")
                    s.removed = s.citations
                s.citations, s.attributed = [best], [best]
                s.chunk_ids = [by_n[best].hit.chunk_id]
                s.support, s.supported = round(scored[(i, best)], 4), True
                continue
            s.suggested = best
        s.supported = False
        s.contradicted_by = [n for n in by_n if scorer.contradicted(judged[(i, n)][1])]
        numbers = parsed[i][1]
        if s.contradicted_by:
            s.flags.append(f"contradicted by {_numbers(s.contradicted_by)}")
        s.flags.append("unsupported by its cited source" if s.citations else
                       "uncited" if not numbers else "cites a source that does not exist")
    _locate_evidence(sentences, [(i, n, claims[i]) for i in claims
                                 for n in sentences[i].citations], by_n, scorer)
    warnings = []
    if invalid:
        warnings.append(f"dropped citations to sources that do not exist: "
                        f"{sorted(set(invalid))}")
    attributed = sum(1 for s in sentences if s.attributed)
    if attributed:
        warnings.append(f"rag attributed {attributed} sentence(s) to the source that supports "
                        f"them" + (f" ({'; '.join(notes)})" if notes else ""))
    flagged = [s for s in sentences if s.supported is False]
    if flagged:
        warnings.append(f"{len(flagged)} of {len(sentences)} sentence(s) uncited or unsupported")
    contradicted = [s for s in sentences if s.contradicted_by]
    if contradicted:
        warnings.append(f"{len(contradicted)} sentence(s) contradicted by the sources")
    if truncated:
        warnings.append("the answer was cut off at the token limit")
    grounded = not claims or _grounded(
        claims, {i: bool(by_n) and scorer.supported(max(scored[(i, n)] for n in by_n))
                 for i in claims})
    return CitationReport(sentences, sorted(set(invalid)), refused, warnings, grounded)


def _grounded(claims: dict[int, str], supported: dict[int, bool]) -> bool:
    """Whether some claim is supported on its own terms. A sentence that opens by referring
    back ("It is known for its speed.") counts only when the sentence it refers to counts: a
    source may well support "it is fast" of something, not of the library the answer made up
    one sentence before (a papers answer kept that way: "... in the Python library `bwt` [3].
    It is known for its speed and efficiency [2].")."""
    counted: dict[int, bool] = {}
    for i in sorted(claims):
        counted[i] = supported[i] and (not REFERS_BACK.match(claims[i])
                                       or counted.get(i - 1, False))
    return any(counted.values())


def _numbers(numbers: Sequence[int]) -> str:
    return ", ".join(f"[{n}]" for n in numbers)


def context_of(passages: Iterable[tuple[str, str]]) -> str:
    """The (title, text) of every passage an answer was written from, as one text: what the
    support check looks up the names a sentence uses in."""
    return "\n".join(f"{title}\n{text}" for title, text in passages)


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

    return _drop(answer, invalid)


def with_attributions(answer: str, sentences: Sequence[Sentence]) -> str:
    """The answer text with rag's changes written in: removed citations taken out of their
    sentence, attributed ones added before its final punctuation. Each changed sentence's
    ``text`` is updated to match, so it can still be found in the answer."""
    out, cursor = [], 0
    for s in sentences:
        at = answer.find(s.text, cursor)
        if at < 0 or not (s.attributed or s.removed):
            continue
        new = _drop(s.text, s.removed).rstrip()
        marks = "".join(f" [{n}]" for n in s.attributed)
        new = new[:-1] + marks + new[-1] if new[-1:] in ".!?" else new + marks
        out.append(answer[cursor:at] + new)
        cursor = at + len(s.text)
        s.text = new
    return "".join(out) + answer[cursor:]


_SPACED_CITATION = re.compile(r"(\s*)" + CITATION.pattern)


def without_citations(text: str) -> str:
    """``text`` with every citation marker taken out, with the space before it."""
    return _SPACED_CITATION.sub("", text)


def _drop(text: str, numbers: Sequence[int]) -> str:
    """``text`` without citations to ``numbers``; a marker left empty goes with its space."""
    def keep(match: re.Match[str]) -> str:
        kept = [n for n in parse_numbers(match.group(2)) if n not in numbers]
        return match.group(1) + "[" + ", ".join(map(str, kept)) + "]" if kept else ""

    return _SPACED_CITATION.sub(keep, text)
