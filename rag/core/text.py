"""Text rules shared by ingestion and grounding: where sentences end (chunks break there, answers
are checked sentence by sentence) and the one sentence a refusal is written as."""

from __future__ import annotations

import re

# The sentence the prompt asks for when the sources do not answer; the checks and the
# evaluation recognise a refusal by it.
REFUSAL = "The indexed documents do not answer this."

# A boundary after sentence-final punctuation (before a capital, digit, quote or bracket), or a
# blank line. Single newlines are usually PDF line wraps and do not end a unit.
_BOUNDARY = re.compile(r"(?<=[.!?:;])[\"')\]]*\s+(?=[\"'(\[A-Z0-9•\-*])|\n\s*\n")
# A full stop that ends an initial or an abbreviation does not end a sentence ("R. M. Fano",
# "e.g. BM25", "Proc. IRE, v. 37, No. 1, pp. 10-21", "Fig. 2"): split there, a cited answer
# gains a citation mid-name and a chunk breaks mid-reference. Numbering abbreviations count only
# before a number or a bracket ("the answer is no. The next" still ends a sentence).
_ABBREVIATION = re.compile(r"(?:^|[\s(\[])(?:(?-i:[A-Z])|e\.g|i\.e|cf|vs|approx|viz|dr|mr|mrs|ms|"
                           r"prof|proc|trans|univ|dept)\.$", re.IGNORECASE)
_NUMBERING = re.compile(r"(?:^|[\s(\[])(?:et al|no|nos|vol|vols|v|pp|p|ch|chap|sec|secs|fig|figs|eq|eqs|"
                        r"ref|refs|tab|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.$",
                        re.IGNORECASE)



def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of sentence-like units, whitespace trimmed, covering all non-space text."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.start()
        if text[end - 1] == "." and match.group().count("\n") < 2 and (
                _ABBREVIATION.search(text, max(0, end - 8), end)
                or text[match.end():match.end() + 1] in tuple("0123456789([")
                and _NUMBERING.search(text, max(0, end - 8), end)):
            continue
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out
