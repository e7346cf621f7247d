"""Reranker training pairs: (query, passage, label) with hard negatives mined by rag's own
hybrid retrieval, from a BEIR dataset's labelled queries, or from questions the configured LLM
writes for passages of a knowledge base (InPars / Promptagator: no labels needed).

Passages are chunks as the reranker sees them at run time (their embed text: title first).
Positives are the best-ranked chunk of each relevant document (a relevant abstract's other chunk
may not hold the evidence); negatives are chunks of other documents ranked high for the query.
A synthetic question is kept only if retrieval finds its own passage in the top ``depth``: a
question its passage cannot answer, or one too vague to find it, would teach noise.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rag.core.types import Hit

Search = Callable[[str, int], Sequence[Hit]]


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str
    label: float


def passage_text(hit: Hit) -> str:
    return hit.chunk.embed_text or hit.chunk.text


def labelled_pairs(queries: dict[str, str], qrels: dict[str, dict[str, int]], search: Search,
                   negatives: int = 7, depth: int = 30, seed: int = 0,
                   tick: Callable[[], None] = lambda: None) -> list[Pair]:
    """For each query with a relevant document: the best-ranked chunk of each relevant document
    retrieval finds in the top ``depth``, and ``negatives`` chunks of other documents drawn from
    there (queries whose relevant documents retrieval misses are left out)."""
    rng = random.Random(seed)
    out: list[Pair] = []
    for qid, query in queries.items():
        relevant = {d for d, grade in qrels.get(qid, {}).items() if grade > 0}
        hits = list(search(query, depth))
        tick()
        positives, seen = [], set()
        for hit in hits:
            if hit.chunk.doc_key in relevant and hit.chunk.doc_key not in seen:
                seen.add(hit.chunk.doc_key)
                positives.append(hit)
        if not positives:
            continue
        others = [h for h in hits if h.chunk.doc_key not in relevant]
        out += [Pair(query, passage_text(h), 1.0) for h in positives]
        out += [Pair(query, passage_text(h), 0.0)
                for h in rng.sample(others, min(negatives, len(others)))]
    rng.shuffle(out)
    return out


QUESTION_PROMPT = ("Write one question that the passage below answers. The question must make "
                   "sense on its own, without the passage, and name what it asks about. Write "
                   "only the question.\n\nPassage:\n{passage}")
_QUESTION = re.compile(r"[^\n?]{8,300}\?")


def as_question(text: str) -> str | None:
    """The first question in a model's output, or None (no question mark, or too short)."""
    match = _QUESTION.search(text.strip().strip('"'))
    if not match:
        return None
    question = re.sub(r"^\s*(?:question\s*\d*\s*[:.-]\s*|\d+[.)]\s*|[-*]\s*)", "",
                      match.group().strip(), flags=re.IGNORECASE)
    return question if len(question.split()) >= 4 else None


@dataclass(frozen=True)
class Synthetic:
    question: str
    passage: Hit
    rank: int | None  # where retrieval put the passage for its own question (None: not found)


def synthetic_questions(passages: Sequence[Hit], write: Callable[[list[str]], list[str]],
                        search: Search, depth: int = 20, batch: int = 16
                        ) -> Iterator[Synthetic]:
    """A question written for each passage (``write`` takes prompts, returns the model's
    texts, one batch at a time) and where retrieval ranks the passage for it."""
    for start in range(0, len(passages), batch):
        part = passages[start:start + batch]
        texts = write([QUESTION_PROMPT.format(passage=h.chunk.text.strip()) for h in part])
        for hit, text in zip(part, texts, strict=True):
            question = as_question(text)
            if question is None:
                yield Synthetic("", hit, None)
                continue
            found = [h.chunk_id for h in search(question, depth)]
            rank = found.index(hit.chunk_id) + 1 if hit.chunk_id in found else None
            yield Synthetic(question, hit, rank)


def synthetic_pairs(items: Sequence[Synthetic], search: Search, negatives: int = 7,
                    depth: int = 20, seed: int = 0) -> list[Pair]:
    """Pairs from the kept questions (their passage found in the top ``depth``): the passage,
    and ``negatives`` chunks of other documents retrieval ranks high for the question."""
    rng = random.Random(seed)
    out: list[Pair] = []
    for item in items:
        if not item.question or item.rank is None:
            continue
        doc = item.passage.chunk.doc_id
        others = [h for h in search(item.question, depth) if h.chunk.doc_id != doc]
        out.append(Pair(item.question, passage_text(item.passage), 1.0))
        out += [Pair(item.question, passage_text(h), 0.0)
                for h in rng.sample(others, min(negatives, len(others)))]
    rng.shuffle(out)
    return out


def listwise_columns(pairs: Sequence[Pair], negatives: int) -> dict[str, list[str]]:
    """Each positive with ``negatives`` negatives of its query (queries with fewer are padded
    by repeating theirs; those with none are left out), as the listwise loss reads them."""
    by_query: dict[str, tuple[list[str], list[str]]] = {}
    for p in pairs:
        positive, negative = by_query.setdefault(p.query, ([], []))
        (positive if p.label > 0 else negative).append(p.passage)
    columns: dict[str, list[str]] = {"query": [], "positive": [],
                                     **{f"negative_{i + 1}": [] for i in range(negatives)}}
    for query, (positive, negative) in by_query.items():
        if not negative:
            continue
        padded = (negative * negatives)[:negatives]
        for passage in positive:
            columns["query"].append(query)
            columns["positive"].append(passage)
            for i, n in enumerate(padded):
                columns[f"negative_{i + 1}"].append(n)
    return columns
