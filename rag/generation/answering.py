"""Turns retrieved passages into a cited answer and checks every sentence against its source."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from rag.core.protocols import Generator
from rag.core.text import REFUSAL
from rag.core.types import Generation, Hit, RetrievalNotes, Source, SourceRecord
from rag.generation.prompting import EXAMPLE_SHINGLES, BuiltPrompt, adds_nothing, build_prompt, shingles
from rag.grounding.answerability import QUESTION_WORDS, AnswerabilityGate, gate_passage
from rag.grounding.citations import (
    CITATION,
    CitationReport,
    Sentence,
    check,
    split_sentences,
    strip_invalid,
    with_attributions,
)
from rag.grounding.support import SupportScorer, content_words

# Sampling temperature for answers asked again (the docs questions with the 0.5B: at 0.7, for 3
# of the 5 questions whose greedy answer restated them, some of 4 samples named the fact).
RESAMPLE_TEMPERATURE = 0.7
# A sampled answer runs to this many tokens at most: the batch decodes until its longest sample
# ends, and the answers it replaces are one short sentence (the samples kept on the question
# sets ran 11-58 tokens, one 120); a sample cut off here keeps the sentences it finished.
RESAMPLE_TOKENS = 64
# An answer that shares less than this of the question's content words is about something else.
RESAMPLE_MIN_RELEVANCE = 0.25
_MARKUP = re.compile(r"\[[^\]]*\](?:\([^)]*\))?")  # citations and links: [1], [a](b.md)
_CODE = re.compile(r"`([^`]+)`")


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
    restated: str | None = None  # its first answer, when that only restated the question

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


def asks_wh(question: str) -> bool:
    """A wh-question ("Which setting ...?"), not a claim to check nor a yes/no question."""
    q = question.strip()
    return bool(QUESTION_WORDS.match(q) or (q.endswith("?") and QUESTION_WORDS.search(q)))


def added_words(question: str, text: str) -> set[str]:
    """What the answer's first sentence says beyond the question: its content words and code
    (in backquotes) that the question does not hold, citations and links aside."""
    sentences = split_sentences(text)
    plain = _MARKUP.sub(" ", sentences[0][0]) if sentences else ""
    asked = question.lower()
    code = {c.strip().lower() for c in _CODE.findall(plain) if c.strip().lower() not in asked}
    return (content_words(plain) - content_words(question)) | code


def restates_question(question: str, text: str) -> bool:
    """The answer to a wh-question opens by restating it ("Which river flows through the old
    town?" -> "A river flows through the old town [1]."), whatever follows.
    Small models write this when they do not find the answer in their passages, and the
    verifier supports it: it says only what the passage says too."""
    if not asks_wh(question) or not text.strip() or text.strip() == REFUSAL:
        return False
    return not added_words(question, text)


def relevance(question: str, text: str) -> float:
    """Share of the question's content words (question words aside) that the answer holds."""
    wanted = content_words(QUESTION_WORDS.sub(" ", question))
    return len(wanted & content_words(text)) / len(wanted) if wanted else 0.0


def finished_sentences(gen: Generation) -> Generation | None:
    """A sample cut off at its token limit, kept to the sentences it finished (None if it
    finished none); a sample that ended by itself as it is."""
    if gen.finish_reason != "length":
        return gen
    sentences = [text for text, _ in split_sentences(gen.text)]
    if not CITATION.sub("", gen.text).rstrip().endswith((".", "!", "?")):  # cut inside it
        sentences = sentences[:-1]
    if not sentences:
        return None
    return replace(gen, text=" ".join(sentences), finish_reason="stop")


def source_entry(n: int, hit: Hit, cited: bool) -> SourceRecord:
    return SourceRecord(n=n, cited=cited, **hit.to_dict(),
                        snippet=" ".join(hit.chunk.text.split())[:240])


class Answerer:
    """Prompt building, generation and citation checking; retrieval happens before it."""

    def __init__(self, generator: Generator, scorer: SupportScorer, answer_tokens: int,
                 passage_tokens: int = 0, attribute: bool = True, abstain: bool = True,
                 gate: AnswerabilityGate | None = None,
                 second_opinion: SupportScorer | None = None, excerpt_words: int = 0,
                 resamples: int = 0) -> None:
        self.generator, self.scorer, self.gate = generator, scorer, gate
        self.resamples = resamples  # answers sampled again when the first restates the question
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

    def settle(self, question: str, built: BuiltPrompt, gen: Generation, notes: RetrievalNotes,
               model: str | None = None) -> Answer:
        """The checked answer. When it opens by restating the question (``restates_question``),
        ``resamples`` answers are sampled from the same prompt, which the LLM server's prefix
        cache has already read, and the best one that adds something, stays on the question and
        is not withheld replaces it: all its sentences supported first, then the one whose added
        words most other samples share (the answer they agree on), then the most of the
        question's words. With the 0.5B model this found 3 more of the 26 docs facts; with the
        1.5B, 1 more (docs/benchmarks.md, "Asking again")."""
        first = self.finish(question, built, gen, notes)
        if not self.resamples or not restates_question(question, gen.text):
            return first
        started = time.perf_counter()
        kept: list[tuple[Answer, set[str], float]] = []
        for sample in self.generator.sample(built.text, self.resamples,
                                            min(self.answer_tokens, RESAMPLE_TOKENS),
                                            RESAMPLE_TEMPERATURE, model):
            candidate = finished_sentences(sample)
            if candidate is None:
                continue
            on_topic = relevance(question, candidate.text)
            if restates_question(question, candidate.text) or on_topic < RESAMPLE_MIN_RELEVANCE:
                continue
            answer = self.finish(question, built, candidate, notes)
            if not (answer.refused or answer.withheld):
                kept.append((answer, added_words(question, candidate.text), on_topic))

        def merit(entry: tuple[Answer, set[str], float]) -> tuple[bool, int, float]:
            answer, added, on_topic = entry
            agreeing = sum(1 for other in kept if other is not entry and added & other[1])
            return all(s.supported for s in answer.sentences), agreeing, on_topic

        seconds = round(time.perf_counter() - started, 3)
        if not kept:
            first.timings["resample_s"] = seconds
            first.warnings.append(f"the answer only restates the question; none of "
                                  f"{self.resamples} answers sampled again added to it")
            return first
        best = max(kept, key=merit)[0]
        best.restated = gen.text.strip()
        best.timings["resample_s"] = seconds
        if "first_token_s" in first.timings:  # the user saw the first answer begin then
            best.timings["first_token_s"] = first.timings["first_token_s"]
        best.warnings.append(f"the model's first answer only restated the question; rag "
                             f"sampled {self.resamples} more and kept the best supported one")
        return best

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
        return [a or self.settle(q, b, next(gens), e, model)  # type: ignore[arg-type]
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
        return self.settle(question, built, final, notes, model)
