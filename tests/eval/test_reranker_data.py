"""Reranker training data from a knowledge base without labels (``rag train reranker --kb``):
the LLM's question for each passage is kept only when retrieval finds that passage for it,
negatives come from other documents, and held-out questions share no document with training."""

from __future__ import annotations

from collections.abc import Sequence

from eval.training.encoders import kept, split_synthetic
from eval.training.reranker_data import (
    as_question,
    listwise_columns,
    synthetic_pairs,
    synthetic_questions,
)
from rag.core.types import Chunk, Hit
from rag.grounding.support import content_words

TEXTS = ["Aspirin lowers the risk of heart attacks in older adults.",
         "Vitamin D supplements reduce bone fractures in women.",
         "Smoking raises the risk of lung cancer tenfold.",
         "Regular exercise lowers blood pressure within weeks.",
         "Fluoride in water reduces cavities in children."]


def hit(i: int) -> Hit:
    text = TEXTS[i]
    return Hit(Chunk(text, f"d{i}", f"d{i}", "x", "", None, None, 0, len(text), 0), f"c{i}", 0.0)


PASSAGES = [hit(i) for i in range(len(TEXTS))]


def search(query: str, k: int) -> Sequence[Hit]:
    """Word-overlap retrieval over the five passages."""
    words = content_words(query)
    return sorted(PASSAGES, key=lambda h: -len(words & content_words(h.chunk.text)))[:k]


def test_as_question_takes_the_first_real_question() -> None:
    assert as_question("Question: What lowers the risk of heart attacks?") == \
        "What lowers the risk of heart attacks?"
    assert as_question('"1. Which supplements reduce bone fractures?" Also: why?') == \
        "Which supplements reduce bone fractures?"
    assert as_question("Aspirin lowers risk.") is None and as_question("Why?") is None


def test_questions_are_kept_only_when_retrieval_finds_their_passage() -> None:
    def write(prompts: list[str]) -> list[str]:
        out = []
        for prompt in prompts:
            if "Smoking" in prompt:
                out.append("I cannot write a question.")  # no question: dropped
            elif "Fluoride" in prompt:
                out.append("What lowers blood pressure within weeks?")  # not its passage
            else:
                passage = prompt.split("Passage:\n")[1]
                out.append(f"What is known about {' '.join(passage.split()[:3])}?")
        return out

    items = list(synthetic_questions(PASSAGES, write, search, depth=1, batch=2))
    good, counts = kept(items)
    assert counts == {"written": 5, "no question": 1, "passage not retrieved": 1, "kept": 3}
    assert [i.passage.chunk_id for i in good] == ["c0", "c1", "c3"]
    assert all(i.rank == 1 for i in good)
    pairs = synthetic_pairs(items, search, negatives=2, depth=5)
    positives = [p for p in pairs if p.label > 0]
    assert sorted(p.passage for p in positives) == sorted(TEXTS[i] for i in (0, 1, 3))
    for p in pairs:
        if p.label == 0:
            owner = next(i.passage.chunk.text for i in good if i.question == p.query)
            assert p.passage != owner  # negatives come from other documents
    assert len(pairs) == 3 * 3
    train, held = split_synthetic(good, 0.34, seed=0)
    assert held and train and not ({i.passage.chunk.doc_id for i in train} &
                                    {i.passage.chunk.doc_id for i in held})
    columns = listwise_columns(pairs, negatives=4)  # two negatives each, padded to four
    assert len(columns["query"]) == 3 and set(columns) == {
        "query", "positive", "negative_1", "negative_2", "negative_3", "negative_4"}
    assert columns["negative_1"] == columns["negative_3"]
