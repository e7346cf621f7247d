"""Deterministic fakes for unit tests: no model downloads, no randomness."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence

import numpy as np

from rag.core.types import Hit

_WORD = re.compile(r"\S+")


class WhitespaceTokenizer:
    """Tokens are whitespace-separated words; mimics the transformers call signature we use."""

    def __call__(self, texts: str | Sequence[str], add_special_tokens: bool = False,
                 return_offsets_mapping: bool = False) -> dict[str, list]:  # type: ignore[type-arg]
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        ids = [[hash(m.group()) % 30000 for m in _WORD.finditer(t)] for t in batch]
        out: dict[str, list] = {"input_ids": ids[0] if single else ids}  # type: ignore[type-arg]
        if return_offsets_mapping:
            offs = [[(m.start(), m.end()) for m in _WORD.finditer(t)] for t in batch]
            out["offset_mapping"] = offs[0] if single else offs
        return out


class HashEmbedder:
    """Bag of hashed lower-cased words, L2-normalised: texts sharing words are similar."""

    def __init__(self, dim: int = 64, max_tokens: int = 40, name: str = "fake-hash",
                 delay: float = 0.0) -> None:
        self.name, self.dim, self.max_tokens, self.delay = name, dim, max_tokens, delay
        self.tokenizer = WhitespaceTokenizer()
        self.embedded = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay * len(texts))
        self.embedded += len(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim),
                                                                              np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vec(text)


class ReverseReranker:
    """Scores hits by reversed order, to make reranking visible in tests."""

    name = "fake-reverse"
    warning = None

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        for i, hit in enumerate(hits):
            hit.rerank = hit.score = float(i)
        return sorted(hits, key=lambda h: -(h.rerank or 0.0))


class ScriptedGenerator:
    """Returns queued answers in order (``enqueue``); counts tokens as whitespace words."""

    name = "fake-scripted"
    special_tokens: frozenset[str] = frozenset()

    def __init__(self, *answers: str, context_window: int = 4096,
                 finish_reason: str = "stop") -> None:
        self.context_window = context_window
        self.finish_reason = finish_reason
        self.queue = list(answers)
        self.prompts: list[str] = []
        self.options: list[tuple[float | None, str | None]] = []  # (temperature, model) per call

    def enqueue(self, *answers: str) -> None:
        self.queue.extend(answers)

    def render(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(f"<{m['role']}>\n{m['content']}" for m in messages) + "\n<assistant>\n"

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def models(self) -> list[str]:
        return [self.name, "fake-other"]

    def _next(self, prompt: str, temperature: float | None, model: str | None):  # noqa: ANN202
        from rag.core.types import Generation

        self.prompts.append(prompt)
        self.options.append((temperature, model))
        text = self.queue.pop(0)
        return Generation(text, self.finish_reason, self.count_tokens(prompt),
                          self.count_tokens(text), 0.01, 0.001)

    def generate(self, prompts: Sequence[str], max_tokens: int,  # type: ignore[type-arg]
                 temperature: float | None = None, model: str | None = None) -> list:
        return [self._next(p, temperature, model) for p in prompts]

    def sample(self, prompt: str, n: int, max_tokens: int,  # type: ignore[type-arg]
               temperature: float, model: str | None = None) -> list:
        return [self._next(prompt, temperature, model) for _ in range(n)]

    def stream(self, prompt: str, max_tokens: int, temperature: float | None = None,
               model: str | None = None):  # noqa: ANN201
        from rag.core.types import Generation

        whole = self._next(prompt, temperature, model)
        words = re.findall(r"\S+\s*", whole.text)
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield Generation(word, whole.finish_reason if last else None, whole.prompt_tokens,
                             i + 1, 0.01, 0.001)


class ExtractiveGenerator(ScriptedGenerator):
    """Answers from the prompt it is given: the source sentence sharing most content words with
    the question, cited; the refusal when none shares at least ``min_overlap`` of them. Lets
    evaluation tests see retrieval and prompt changes move the scores, without an LLM."""

    name = "fake-extractive"
    SOURCE = re.compile(r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>', re.DOTALL)

    def __init__(self, min_overlap: float = 0.3, context_window: int = 4096) -> None:
        super().__init__(context_window=context_window)
        self.min_overlap = min_overlap

    def _next(self, prompt: str, temperature: float | None, model: str | None):  # noqa: ANN202
        from rag.core.text import REFUSAL, sentence_spans
        from rag.grounding.support import content_words

        last = prompt[prompt.rindex("<user>"):]
        question = content_words(re.findall(r"Question: (.*)", last)[-1])
        best: tuple[float, str] = (0.0, REFUSAL)
        for n, text in self.SOURCE.findall(last):
            for a, b in sentence_spans(text):
                share = len(question & content_words(text[a:b])) / max(1, len(question))
                if share > best[0]:
                    best = (share, f"{text[a:b].rstrip('.')} [{n}].")
        self.queue = [best[1] if best[0] >= self.min_overlap else REFUSAL]
        return super()._next(prompt, temperature, model)


class NegationVerifier:
    """A claim verifier by rule: a sentence holding most of the claim's content words supports
    it, unless exactly one of the two says "not" (then it contradicts it)."""

    name = "fake-negation"
    threshold = 0.5

    def judge(self, claims_and_sentences: Sequence[tuple[str, Sequence[str]]]) -> list:
        from rag.grounding.support import content_words
        from rag.grounding.verifier import Judgement

        out = []
        for claim, sentences in claims_and_sentences:
            words = content_words(claim) - {"not"}
            best = (0.0, 0.0, 0)
            for i, sentence in enumerate(sentences):
                share = len(words & content_words(sentence)) / max(1, len(words))
                negated = (" not " in f" {claim.lower()} ") != (" not " in f" {sentence.lower()} ")
                support, contradiction = (0.1, 0.9) if share >= 0.6 and negated else (share, 0.02)
                if support > best[0] or contradiction > best[1]:
                    best = (max(best[0], support), max(best[1], contradiction), i)
            out.append(Judgement(*best))
        return out
