"""Answer-level scores against a question set: was the fact found, was the right document
cited, was an unanswerable question refused. Deterministic string rules, no LLM judge."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rag.core.errors import QuestionSetError
from rag.generation.answering import Answer


class Question(BaseModel):
    """One line of a question set (JSONL)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str
    id: str | None = None
    answers: list[str] = []
    doc: str | None = None  # file name, path or document id that holds the answer
    docs: list[str] = []  # several documents, any of which holds the answer
    page: int | None = None
    unanswerable: bool = False
    reference: str | None = None
    verdict: Literal["SUPPORT", "REFUTE", "NEI"] | None = None  # claims (SciFact)
    query: str | None = None  # what to search for, when it is not the question itself

    @property
    def right_docs(self) -> list[str]:
        return [d for d in [self.doc, *self.docs] if d]

    @model_validator(mode="after")
    def _usable(self) -> Question:
        if not self.question.strip():
            raise ValueError("question is empty")
        if self.unanswerable and self.answers:
            raise ValueError("an unanswerable question cannot have answers")
        return self


def load_questions(path: Path) -> list[Question]:
    """Every line parsed and validated; the first bad one is reported with its line number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionSetError(f"{path}: cannot read ({exc})") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            questions.append(Question.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise QuestionSetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(map(str, error["loc"]))
            raise QuestionSetError(f"{path}:{number}: {where + ': ' if where else ''}"
                                   f"{error['msg']}") from exc
    if not questions:
        raise QuestionSetError(f"{path}: no questions")
    return questions


def normalise(text: str) -> str:
    """NFKC, lower case, punctuation to spaces except inside numbers ("0.99", "4,000")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d)[.,](?=\d)", "\0", text)
    text = re.sub(r"[^\w\0]+", " ", text).replace("\0", ".")
    return f" {' '.join(text.split())} "


def fact_found(text: str, answers: Iterable[str]) -> bool:
    """Any accepted answer appears in the text as whole words, after ``normalise``."""
    haystack = normalise(text)
    return any(normalise(a) in haystack for a in answers if a.strip())


def _same_doc(source: dict[str, object], doc: str) -> bool:
    path = str(source["source"])
    return doc in (path, str(source.get("doc_key"))) or PurePath(path).name == PurePath(doc).name


def score(answer: Answer, question: Question) -> dict[str, object]:
    """Per-answer scores; ``None`` where a score does not apply (no NaN anywhere)."""
    cited = [s for s in answer.sources if s["cited"]]
    cited_right = (any(_same_doc(s, d) for s in cited for d in question.right_docs)
                   if question.right_docs and not question.unanswerable else None)
    found = fact_found(answer.text, question.answers) if question.answers else None
    sentences = answer.sentences
    return {
        "question": question.question,
        "unanswerable": question.unanswerable,
        "refused": answer.refused,
        "refusal_correct": answer.refused == question.unanswerable,
        "fact_found": found,
        "right_doc_cited": cited_right,
        "sentences": len(sentences),
        "cited_sentences": sum(1 for s in sentences if s.citations),
        "supported_sentences": sum(1 for s in sentences if s.supported),
        "prompt_tokens": answer.timings.get("prompt_tokens"),
        "completion_tokens": answer.timings.get("completion_tokens"),
        "first_token_s": answer.timings.get("first_token_s"),
        "generate_s": answer.timings.get("generate_s"),
        "answer": answer.text,
        "withheld": answer.withheld,
        "restated": answer.restated,
    }


def rate(rows: Sequence[dict[str, object]], key: str) -> float | None:
    """Share of rows where ``key`` is true, over the rows where it applies."""
    values = [bool(r[key]) for r in rows if r.get(key) is not None]
    return round(sum(values) / len(values), 4) if values else None
