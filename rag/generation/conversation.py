"""Standalone queries for follow-up questions: retrieval sees one question, not a conversation."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.core.protocols import Generator
from rag.core.text import REFUSAL
from rag.generation.prompting import rewrite_messages
from rag.grounding.citations import CITATION
from rag.grounding.support import content_words

HISTORY_TURNS = 3  # the last few turns carry the references a follow-up makes
ANSWER_CHARS = 400  # long answers add tokens, not meaning, to the rewrite prompt
REWRITE_TOKENS = 64


def trim_history(history: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The last turns, answers shortened and stripped of [n] markers (they mean nothing here)."""
    out = []
    for question, answer in list(history)[-HISTORY_TURNS:]:
        text = " ".join(CITATION.sub("", answer).split())
        if len(text) > ANSWER_CHARS:
            text = text[:ANSWER_CHARS].rsplit(" ", 1)[0] + " ..."
        out.append((" ".join(question.split()), text))
    return out


def clean_rewrite(output: str, question: str, previous: str) -> str:
    """The model's first line without labels or quotes, if it is a real rewrite. A rewrite must
    keep every content word of the follow-up (a small model sometimes swaps the subject for the
    previous question's); otherwise the previous question and the follow-up go to retrieval
    together, which still carries the context."""
    fallback = f"{previous} {question}" if previous else question
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return fallback
    text = re.sub(r"^(rewritten|standalone)?\s*(question|query)\s*:\s*", "", lines[0], flags=re.I)
    text = CITATION.sub("", text).strip().strip("\"'“”").strip()
    too_long = len(text) > 3 * len(question) + 120
    if not text or too_long or REFUSAL.rstrip(".").lower() in text.lower():
        return fallback
    if text == question.strip() or not content_words(question) <= content_words(text):
        return fallback
    return text


def rewrite(generator: Generator, history: Sequence[tuple[str, str]], question: str,
            model: str | None = None) -> str:
    """A standalone version of ``question``; unchanged when there is no history."""
    if not history or not question.strip():
        return question
    specials = generator.special_tokens
    turns = trim_history(history)
    budget = generator.context_window - REWRITE_TOKENS
    while True:  # oldest turns go first; a question too long to rewrite is searched as asked
        prompt = generator.render(rewrite_messages(turns, question, specials))
        if generator.count_tokens(prompt) <= budget:
            break
        if not turns:
            return question
        turns = turns[1:]
    out = generator.generate([prompt], REWRITE_TOKENS, temperature=0.0, model=model)[0]
    return clean_rewrite(out.text, question, " ".join(history[-1][0].split()))
