"""Excerpts of passages for a tight passage budget: the sentences of a passage that share the
question's rarer words, with their neighbours, so that a budget of a few hundred tokens holds
the answering lines of many passages instead of three whole ones."""

from __future__ import annotations

import re
from functools import lru_cache

from rag.core.text import sentence_spans

_WORD = re.compile(r"\w+")
ELLIPSIS = "…"


@lru_cache(maxsize=20_000)
def _weight(word: str) -> float:
    """How much a shared word says: rare words much, function words nothing (wordfreq's Zipf
    scale: 7 is 'the', 0 is unknown)."""
    from wordfreq import zipf_frequency

    return max(0.0, 6.0 - zipf_frequency(word, "en"))


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 1}


def excerpt(text: str, question: str, max_words: int) -> str:
    """``text`` cut to at most about ``max_words`` words around its sentence that best matches
    ``question`` (the sum of the weights of the question's words it holds), growing to the
    better-matching neighbour first; cut ends are marked with an ellipsis. A passage already
    short enough is returned whole."""
    if len(text.split()) <= max_words:
        return text
    spans = sentence_spans(text)
    asked = _words(question)
    scores = [sum(_weight(w) for w in asked & _words(text[a:b])) for a, b in spans]
    sizes = [len(text[a:b].split()) for a, b in spans]
    best = max(range(len(spans)), key=lambda i: (scores[i], -i))
    first = last = best
    used = sizes[best]
    while True:
        options = [i for i in (first - 1, last + 1)
                   if 0 <= i < len(spans) and used + sizes[i] <= max_words]
        if not options:
            break
        pick = max(options, key=lambda i: (scores[i], -abs(i - best)))
        first, last = min(first, pick), max(last, pick)
        used += sizes[pick]
    body = text[spans[first][0]:spans[last][1]]
    if used > max_words:  # one sentence longer than the whole allowance: its words around the match
        words = body.split()
        body = " ".join(words[:max_words])
    return (ELLIPSIS + " " if first > 0 else "") + body + (
        " " + ELLIPSIS if last < len(spans) - 1 or used > max_words else "")
