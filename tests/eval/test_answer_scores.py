"""Question sets and answer-level scores (eval/answers.py): tiny real data, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.answers import fact_found, load_questions, normalise, rate, score
from rag.core.errors import QuestionSetError
from rag.generation.answering import Answer
from rag.grounding.citations import Sentence

PAPERS_SET = Path(__file__).resolve().parents[2] / "eval" / "questions" / "papers.jsonl"


def test_the_papers_question_set_is_valid() -> None:
    questions = load_questions(PAPERS_SET)
    assert len(questions) >= 30
    assert sum(q.unanswerable for q in questions) >= 3
    assert all(q.doc and q.page and q.answers for q in questions if not q.unanswerable)


def test_bad_question_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "ok?"}\n{"question": "x", \n')
    with pytest.raises(QuestionSetError, match=r"q.jsonl:2"):
        load_questions(bad)
    bad.write_text('{"question": "ok?"}\n\n{"answers": ["a"]}\n')
    with pytest.raises(QuestionSetError, match=r"q.jsonl:3: .*question"):
        load_questions(bad)
    bad.write_text(json.dumps({"question": "q", "unanswerable": True, "answers": ["a"]}))
    with pytest.raises(QuestionSetError, match="cannot have answers"):
        load_questions(bad)
    bad.write_text("\n")
    with pytest.raises(QuestionSetError, match="no questions"):
        load_questions(bad)


def test_fact_matching_is_whole_words_after_normalising() -> None:
    assert normalise("It uses 0.99 momentum, ﬁne.") == " it uses 0.99 momentum fine "
    assert fact_found("The base model uses 8 heads [1].", ["8", "eight"])
    assert not fact_found("It has 18 layers.", ["8"])
    assert fact_found("Trained on eight P100 GPUs", ["P100"])
    assert fact_found("a vocabulary of about 37,000 tokens", ["37000", "37,000"])
    assert not fact_found("no number here", [])


def answer(text: str, cited_source: str, refused: bool = False) -> Answer:
    return Answer(
        question="q", text=text, sentences=[Sentence(text, [1], ["c"], 0.9, True)],
        sources=[{"n": 1, "cited": True, "source": cited_source},
                 {"n": 2, "cited": False, "source": "/x/right.pdf"}],
        refused=refused, warnings=[], timings={"prompt_tokens": 900}, models={})


def test_answer_scores_and_rates_never_nan() -> None:
    q = load_questions(PAPERS_SET)[0]
    right = score(answer("It uses 8 heads [1].", f"/data/papers/{q.doc}"), q)
    wrong = score(answer("It uses 6 heads [1].", "/data/papers/other.pdf"), q)
    assert (right["fact_found"], right["right_doc_cited"]) == (True, True)
    assert (wrong["fact_found"], wrong["right_doc_cited"]) == (False, False)
    unanswerable = next(q for q in load_questions(PAPERS_SET) if q.unanswerable)
    refusal = score(answer("The indexed documents do not answer this.", "a.pdf", True),
                    unanswerable)
    assert refusal["refusal_correct"] and refusal["fact_found"] is None
    assert refusal["right_doc_cited"] is None
    rows = [right, wrong, refusal]
    assert rate(rows, "fact_found") == 0.5 and rate(rows, "refusal_correct") == 1.0
    assert rate([], "fact_found") is None
