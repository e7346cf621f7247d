"""Turns retrieved passages into a cited answer and checks every sentence against its source."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from rag.core.protocols import Generator
from rag.core.text import REFUSAL
from rag.core.types import Generation, Hit, RetrievalNotes, Source, SourceRecord
from rag.generation.prompting import EXAMPLE_SHINGLES, BuiltPrompt, adds_nothing, build_prompt, shingles
from rag.grounding.answerability import AnswerabilityGate, gate_passage
from rag.grounding.citations import (
    CitationReport,
    Sentence,
    check,
    split_sentences,
    strip_invalid,
    with_attributions,
)
from rag.grounding.support import SupportScorer


@dataclass
class Answer:
    question: str
    text: str
    sentences: list[Sentence]
    sources: list[SourceRecord]
    refused: bool
    warnings: list[str]
    timings: dict[str, float]
    models: dict[str, str | None]
    finish_reason: str | None = None
    invalid_citations: list[int] = field(default_factory=list)
    standalone_query: str | None = None  # the follow-up rewritten for retrieval, if it was
    withheld: str | None = None  # the model's answer, when no source supported any of it

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Answer:
        """The Answer that ``to_dict`` gave, also after a JSON round trip (int keys back)."""
        sentences = [Sentence(**{**s, "evidence": {int(n): span for n, span in
                                                   s.get("evidence", {}).items()}})
                     for s in data["sentences"]]
        return cls(**{**data, "sentences": sentences})


def echoes_example(text: str, sources: Sequence[Source]) -> bool:
    """The model wrote the prompt's worked example back instead of answering (the 0.5B model
    did, for a docs question its ten passages left it unsure of: "Jupiter is the largest
    planet... [1]"): a sentence of three or more word trigrams, nearly all from the example
    and not from any source given (a KB about Jupiter's moons may say the same)."""
    given: set[tuple[str, ...]] = set()
    for source in sources:
        given |= shingles(source.hit.chunk.text)
    for sentence, _ in split_sentences(text):
        words = shingles(sentence)
        if len(words) >= 3 and adds_nothing(words, EXAMPLE_SHINGLES) and \
                not adds_nothing(words, given):
            return True
    return False


def source_entry(n: int, hit: Hit, cited: bool) -> SourceRecord:
    return SourceRecord(n=n, cited=cited, **hit.to_dict(),
                        snippet=" ".join(hit.chunk.text.split())[:240])


class Answerer:
    """Prompt building, generation and citation checking; retrieval happens before it."""

    def __init__(self, generator: Generator, scorer: SupportScorer, answer_tokens: int,
                 passage_tokens: int = 0, attribute: bool = True, abstain: bool = True,
                 gate: AnswerabilityGate | None = None,
                 second_opinion: SupportScorer | None = None, excerpt_words: int = 0) -> None:
        self.generator, self.scorer, self.gate = generator, scorer, gate
        self.excerpt_words = excerpt_words  # passages as excerpts, only under a passage budget
        self.answer_tokens, self.attribute, self.abstain = answer_tokens, attribute, abstain
        self.passage_tokens = passage_tokens
        self.second_opinion = second_opinion

    def _withhold(self, text: str, report: CitationReport, sources: Sequence[Source]) -> bool:
        """Abstention: no passage supports any sentence. Withholding loses the whole answer, so
        where a ``second_opinion`` is given (the fallback function beside the verifier) it must
        find no support either: the verifier, trained on SciFact alone, missed support in
        other domains (papers questions: 7 answerable answers withheld, 5 of which the fallback
        supports), while the sentences keep the verifier's flags."""
        if not self.abstain or report.grounded or report.refused:
            return False
        return self.second_opinion is None or not check(text, sources, self.second_opinion,
                                                        attribute=False).grounded

    def prompt(self, question: str, hits: Sequence[Hit]) -> BuiltPrompt:
        return build_prompt(question, hits, self.generator.render, self.generator.count_tokens,
                            self.generator.context_window, self.answer_tokens,
                            self.generator.special_tokens, self.passage_tokens,
                            self.excerpt_words if self.passage_tokens else 0)

    def finish(self, question: str, built: BuiltPrompt, gen: Generation,
               notes: RetrievalNotes) -> Answer:
        """Citation check and the Answer object, with retrieval's notes carried on."""
        started = time.perf_counter()
        truncated = gen.finish_reason == "length"
        report: CitationReport = check(gen.text, built.sources, self.scorer, truncated,
                                       self.attribute)
        withheld, why = None, ""
        if echoes_example(gen.text, built.sources):
            why = "it repeats the prompt's worked example, not the sources"
        elif self._withhold(gen.text, report, built.sources):
            why = "no passage supports any sentence of it (citations.abstain)"
        if why:
            withheld = gen.text.strip()
            report = check(REFUSAL, built.sources, self.scorer)
            report.warnings.append(f"rag withheld the model's answer: {why}")
            if truncated:
                report.warnings.append("the answer was cut off at the token limit")
        cited = {n for s in report.sentences for n in s.citations}
        sources = [source_entry(s.n, s.hit, s.n in cited) for s in built.sources]
        warnings = list(notes.warnings) + report.warnings
        if built.dropped:
            warnings.append(f"{built.dropped} retrieved passage(s) did not fit the context window")
        timings: dict[str, float] = dict(notes.timings)
        timings.update({
            "generate_s": round(gen.seconds, 3),
            "check_s": round(time.perf_counter() - started, 3),
            "prompt_tokens": built.prompt_tokens,
            "passages": len(built.sources),
            "completion_tokens": gen.completion_tokens,
            "tokens_per_s": round(gen.tokens_per_s, 2),
        })
        if gen.first_token_s is not None:
            timings["first_token_s"] = round(gen.first_token_s, 3)
        return Answer(
            question=question,
            text=REFUSAL if withheld else strip_invalid(
                with_attributions(gen.text.strip(), report.sentences), report.invalid),
            sentences=report.sentences, sources=sources, refused=report.refused,
            warnings=warnings, timings=timings,
            models=dict(notes.models),
            finish_reason=gen.finish_reason, invalid_citations=report.invalid,
            withheld=withheld,
        )

    def no_passages(self, question: str, notes: RetrievalNotes) -> Answer:
        """Nothing retrieved: the refusal, without spending a generation."""
        gen = Generation(REFUSAL, "no_passages")
        built = BuiltPrompt("", [], 0, 0)
        answer = self.finish(question, built, gen, notes)
        answer.warnings.insert(0, "no passages were retrieved for this question")
        return answer

    def declined(self, question: str, hits: Sequence[Hit], built: BuiltPrompt,
                 notes: RetrievalNotes) -> Answer | None:
        """The refusal, without spending a generation, when the answerability gate finds that
        no retrieved passage addresses the question (``notes.query``: what was searched); None
        when one does, or there is no gate. The gate reads every retrieved passage, as it was
        fitted (`rag eval gate`: the top k), not only those a passage budget lets into the
        prompt: on the 4 that fit 750 tokens it refused a papers question that it let through
        with all 10."""
        if self.gate is None:
            return None
        started = time.perf_counter()
        query = notes.query or question
        score = self.gate.score(query, [gate_passage(h.chunk) for h in hits])
        notes.timings["gate_s"] = round(time.perf_counter() - started, 3)
        if self.gate.addressed(score):
            return None
        answer = self.finish(question, built, Generation(REFUSAL, "unaddressed"), notes)
        answer.warnings.insert(0, (
            f"rag did not ask the model: no retrieved passage addresses the question "
            f"(answerability {score:.2f} < {self.gate.threshold}; citations.gate)"))
        return answer

    def answer_many(self, questions: Sequence[str], hits: Sequence[Sequence[Hit]],
                    notes: Sequence[RetrievalNotes], temperature: float | None = None,
                    model: str | None = None) -> list[Answer]:
        """One batched generation for every question that has passages that address it."""
        built = [self.prompt(q, h) if h else None for q, h in zip(questions, hits, strict=True)]
        early = [self.no_passages(q, e) if b is None else self.declined(q, h, b, e)
                 for q, h, b, e in zip(questions, hits, built, notes, strict=True)]
        todo = [b.text for b, a in zip(built, early, strict=True) if a is None and b is not None]
        gens = iter(self.generator.generate(todo, self.answer_tokens, temperature, model)
                    if todo else [])
        return [a or self.finish(q, b, next(gens), e)  # type: ignore[arg-type]
                for q, b, e, a in zip(questions, built, notes, early, strict=True)]

    def answer_stream(self, question: str, hits: Sequence[Hit], notes: RetrievalNotes,
                      on_token: Callable[[str], None], temperature: float | None = None,
                      model: str | None = None) -> Answer:
        built = self.prompt(question, hits) if hits else None
        early = self.no_passages(question, notes) if built is None else self.declined(
            question, hits, built, notes)
        if early is not None:
            on_token(early.text)
            return early
        assert built is not None
        text, last = [], Generation("")
        for piece in self.generator.stream(built.text, self.answer_tokens, temperature, model):
            if piece.text:
                text.append(piece.text)
                on_token(piece.text)
            last = piece
        final = Generation("".join(text), last.finish_reason, built.prompt_tokens,
                           last.completion_tokens, last.seconds, last.first_token_s)
        return self.finish(question, built, final, notes)
