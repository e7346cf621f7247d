"""The service layer: composes the stages; the CLI, the UI and evaluation call only this."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.chunking import TokenChunker
from ingest.indexer import Indexer, IndexReport, Progress
from rag.core.config import GENERATOR_SMALL, Settings
from rag.core.errors import KBError
from rag.core.folders import absolute
from rag.core.hardware import generator_gpu
from rag.core.protocols import Embedder, Generator, Reranker, Retriever
from rag.core.types import Hit, RetrievalNotes
from rag.embedding.embedder import SentenceTransformerEmbedder
from rag.generation.answering import Answer, Answerer
from rag.generation.conversation import rewrite
from rag.generation.engines import engine_dtype, make_generator
from rag.grounding.answerability import AnswerabilityGate
from rag.grounding.support import VERIFIER_THRESHOLD, SupportScorer, remembering
from rag.grounding.verifier import Verifier
from rag.reranking.cross_encoder import CrossEncoderReranker
from rag.retrieval.retrievers import (
    Bm25Retriever,
    DenseRetriever,
    Fusion,
    HybridRetriever,
    measured_fusion,
)
from rag.storage.kb import KnowledgeBase
from rag.storage.store import FileRecord

MODES = ("dense", "bm25", "hybrid")


@dataclass
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    reranker: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "query": self.query,
            "mode": self.mode,
            "reranker": self.reranker,
            "timings": self.timings,
            "warnings": self.warnings,
            "hits": [h.to_dict() for h in self.hits],
        }


log = logging.getLogger(__name__)


def passage_budget(settings: Settings) -> int:
    """``retrieval.passage_tokens``, with ``auto`` resolved from how fast the generator reads a
    prompt: 750 tokens (passages quoted as excerpts) wherever a CPU reads it slowly, that is in
    fp32 or with a model larger than the bundled 0.5B; no budget on a GPU, nor for the 0.5B in
    bf16. On 2 cores (docs/benchmarks.md): the 0.5B in fp32 took 28 s per papers answer with
    10 whole passages and 9.7 s with the budget; the 1.5B in bf16 15-18 s and 5.5 s, finding
    22 of 29 facts against the 0.5B's 21 with all 10 passages (6.2 s); the 0.5B in bf16 found
    21 of 29 with all 10 and 19 with the budget, both within 10 s."""
    setting = settings.retrieval.passage_tokens
    if setting != "auto":
        return setting
    if generator_gpu():
        return 0
    slow = (engine_dtype(settings.generator.dtype) == "float32"
            or settings.generator.model != GENERATOR_SMALL)
    return 750 if slow else 0


def fusion_of(settings: Settings) -> Fusion:
    """``retrieval.fusion`` and ``retrieval.dense_weight`` with ``auto`` resolved: the fusion
    measured best on SciFact train for the configured embedder (``MEASURED_FUSION``); a weight
    left on auto with a method the embedder was not measured with is even (0.5)."""
    r = settings.retrieval
    measured = measured_fusion(settings.embedder.model)
    method = measured.method if r.fusion == "auto" else r.fusion
    weight = (r.dense_weight if r.dense_weight != "auto"
              else measured.dense_weight if method == measured.method else 0.5)
    return Fusion(method, weight, r.rrf_k)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        kb_name: str | None = None,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        generator: Generator | None = None,
    ) -> None:
        self.settings = settings
        self.kb = KnowledgeBase(kb_name or settings.default_kb, settings)
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            settings.embedder, home=settings.home)
        self.reranker: Reranker = reranker or CrossEncoderReranker.configured(settings)
        self._generator = generator
        self._answerer: Answerer | None = None
        self._scorer: SupportScorer | None = None
        # One KB connection and snapshot serve every thread (UI sessions); searches are
        # milliseconds, so they simply take turns.
        self._lock = threading.RLock()

    @property
    def generator(self) -> Generator:
        """Created on first use: search and index never load an LLM."""
        if self._generator is None:
            self._generator = make_generator(self.settings.generator, self.settings.home)
        return self._generator

    @property
    def scorer(self) -> SupportScorer:
        """The sentence-support function that checks answers (and that evaluation uses): the
        verifier, or the fallback named by citations.support_method when it is off or missing."""
        if self._scorer is None:
            c = self.settings.citations
            self._scorer = SupportScorer(
                remembering(self.embedder.embed_documents),
                load_verifier(c.verifier_model, self.settings.home, self.settings.embedder.device,
                              self.settings.embedder.dtype),
                c.support_method, c.support_threshold,
                contradiction_threshold=c.contradiction_threshold)
        return self._scorer

    @functools.cached_property
    def gate(self) -> AnswerabilityGate | None:
        """The answerability gate, when it is on and was trained with this embedder (loaded,
        and its absence reported, once)."""
        c = self.settings.citations
        if not c.gate:
            return None
        gate = AnswerabilityGate.shipped(self.scorer, self.embedder.name, c.gate_threshold)
        if gate is None:
            log.warning("the answerability gate is off: it works with the embedder it was "
                        "trained with, not %s (rag eval gate --train refits it; citations.gate "
                        "= false silences this)", self.embedder.name)
        return gate

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            c = self.settings.citations
            second = None  # beside the verifier, withholding an answer needs the fallback too
            if self.scorer.verifier is not None:
                second = SupportScorer(self.scorer.embed, None, c.support_method)
            self._answerer = Answerer(self.generator, self.scorer,
                                      self.settings.generator.answer_tokens,
                                      passage_budget(self.settings), c.attribute, c.abstain,
                                      self.gate, second, self.settings.retrieval.excerpt_words,
                                      c.resamples)
        return self._answerer

    def index(
        self, paths: Sequence[Path], rebuild: bool = False, progress: Progress | None = None,
        prune: bool = False, cancel: threading.Event | None = None,
    ) -> IndexReport:
        c = self.settings.chunking
        chunker = TokenChunker(self.embedder, c.max_tokens, c.overlap_tokens, c.prepend_title)
        runner = None
        jobs = self.settings.jobs
        if jobs.runner == "ray":
            from ingest.runners.ray_data import RayRunner, embedder_factory

            runner = RayRunner(embedder_factory(self.embedder), c, self.kb.path / "staging",
                               jobs.ray_address, jobs.ray_embed_actors)
        return Indexer(self.kb, self.embedder, chunker, self.settings.ingest, runner).run(
            paths, rebuild=rebuild, prune=prune, progress=progress, cancel=cancel
        )

    def documents(self) -> list[FileRecord]:
        """The KB's files, as indexed (title, kind, chunks, warnings, when)."""
        with self._lock:
            self.kb.require()
            return sorted(self.kb.store.files().values(), key=lambda r: r.path)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return self.kb.stats()

    def remove(self, paths: Sequence[str]) -> int:
        """Take documents out of the KB and publish a snapshot without them; returns the number
        of chunks dropped. A path is taken as recorded, else as ``absolute`` records it. Waits
        for no one: a running indexing job makes this a KBError."""
        # Not under self._lock: searches go on with the live snapshot while the new one builds.
        kb = KnowledgeBase(self.kb.name, self.settings)
        try:
            with kb.writer():
                kb.require()
                known = kb.store.files()
                recorded = [p if p in known else str(absolute(p)) for p in paths]
                missing = [p for p, r in zip(paths, recorded, strict=True) if r not in known]
                if missing:
                    raise KBError(f"not in knowledge base {kb.name!r}: {', '.join(missing)}")
                dropped = kb.store.remove_files(recorded)
                kb.publish(self.embedder.dim)
        finally:
            kb.close()
        self.refresh()
        return dropped

    def refresh(self) -> None:
        """Load the newest snapshot now, outside the search lock (searches go on meanwhile)."""
        if self.kb.current_id() is not None:
            self.kb.snapshot()

    def retriever(self, mode: str) -> Retriever:
        """A retriever over the live snapshot as of now (all its parts read that one)."""
        r = self.settings.retrieval
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r} (choose from {', '.join(MODES)})")
        snap = self.kb.snapshot()
        if mode == "dense":
            return DenseRetriever(snap, self.embedder)
        if mode == "bm25":
            return Bm25Retriever(snap)
        return HybridRetriever([DenseRetriever(snap, self.embedder), Bm25Retriever(snap)],
                               r.candidates, fusion_of(self.settings))

    def search(
        self, query: str, k: int | None = None, mode: str | None = None,
        rerank: bool | None = None,
    ) -> SearchResult:
        r = self.settings.retrieval
        k = k or r.k
        mode = mode or r.mode
        rerank = self.settings.reranker.enabled if rerank is None else rerank
        warnings: list[str] = []
        with self._lock:
            self.kb.require()
            self.kb.check_compatible(self.embedder)
            stale = self.kb.store.stale_files()
            if stale:
                warnings.append(f"{stale} file(s) of this knowledge base must be re-indexed "
                                "(an older rag version lost their chunks): run rag index again")
            t0 = time.perf_counter()
            depth = max(k, self.settings.reranker.top_n) if rerank else k
            hits = self.retriever(mode).retrieve(query, depth) if query.strip() else []
            if not query.strip():
                warnings.append("empty query")
            t1 = time.perf_counter()
            used = None
            if rerank and hits:
                hits = self.reranker.rerank(query, hits)
                warning = self.reranker.warning
                if warning:
                    warnings.append(warning)
                else:
                    used = self.reranker.name
            t2 = time.perf_counter()
        return SearchResult(
            query=query, mode=mode, hits=hits[:k], warnings=warnings, reranker=used,
            timings={"retrieve_s": round(t1 - t0, 4), "rerank_s": round(t2 - t1, 4)},
        )

    def _retrieve_for_answer(
        self, question: str, k: int | None, mode: str | None, rerank: bool | None,
        model: str | None = None,
    ) -> tuple[list[Hit], RetrievalNotes]:
        result = self.search(question, k=k, mode=mode, rerank=rerank)
        models = {"embedder": self.embedder.name, "reranker": result.reranker,
                  "generator": model or self.generator.name}
        return result.hits, RetrievalNotes(question, list(result.warnings), dict(result.timings),
                                           models)

    def rewrite(self, history: Sequence[tuple[str, str]], question: str,
                model: str | None = None) -> str:
        """``question`` made standalone using the (question, answer) history, for retrieval."""
        return rewrite(self.generator, history, question, model)

    def ask(
        self, question: str, k: int | None = None, mode: str | None = None,
        rerank: bool | None = None, on_token: Callable[[str], None] | None = None,
        history: Sequence[tuple[str, str]] = (), temperature: float | None = None,
        model: str | None = None,
    ) -> Answer:
        """One cited answer; tokens go to ``on_token`` as they are generated. With a
        conversation ``history``, a follow-up is first rewritten into a standalone query."""
        started = time.perf_counter()
        query = self.rewrite(history, question, model) if history else question
        rewrite_s = round(time.perf_counter() - started, 4)
        hits, notes = self._retrieve_for_answer(query, k, mode, rerank, model)
        if on_token is None:
            answer = self.answerer.answer_many([query], [hits], [notes], temperature, model)[0]
        else:
            answer = self.answerer.answer_stream(query, hits, notes, on_token, temperature, model)
        if query != question:
            answer.question, answer.standalone_query = question, query
            answer.timings["rewrite_s"] = rewrite_s
        return answer

    def ask_many(
        self, questions: Sequence[str], k: int | None = None, mode: str | None = None,
        rerank: bool | None = None, queries: Sequence[str | None] | None = None,
    ) -> list[Answer]:
        """Many questions, retrieved one by one and generated in one vLLM batch. ``queries``
        (optional, one per question) are searched instead of the questions where given."""
        searched = [q or question for q, question in
                    zip(queries or [None] * len(questions), questions, strict=True)]
        retrieved = [self._retrieve_for_answer(q, k, mode, rerank) for q in searched]
        return self.answerer.answer_many(
            questions, [h for h, _ in retrieved], [e for _, e in retrieved])


def load_verifier(spec: str, home: Path, device: str = "auto",
                  dtype: str = "auto") -> Verifier | None:
    """The configured claim verifier, or None (off, or missing: said once, and the support
    check falls back to citations.support_method)."""
    if not spec:
        return None
    from rag.bundled import bundled, resolve
    from rag.core.errors import BundledModelError

    try:
        path = resolve(spec, home)
        card = bundled(spec.split(":", 1)[1]).card if spec.startswith("bundled:") else {}
    except BundledModelError as exc:
        log.warning("the claim verifier is off: %s; sentences are checked by "
                    "citations.support_method instead", exc)
        return None
    return Verifier(path, device, threshold=float(card.get("threshold", VERIFIER_THRESHOLD)),
                    name=spec, dtype=dtype)
