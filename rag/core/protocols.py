"""Every stage's contract, optional members included, one small protocol each: loading,
chunking, embedding, indexing, retrieval, reranking and generation. Concrete classes live in the
stage folders, in modules named for what they do."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rag.core.types import Chunk, Document, Generation, Hit, Loaded


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors, applying the model family's prefixes."""

    name: str
    dim: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Inner-product search over row-numbered vectors; rows map to chunk ids outside the index."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def __len__(self) -> int: ...
    def close(self) -> None: ...


@runtime_checkable
class TextIndex(Protocol):
    """Keyword (BM25) search over the same rows: (rows, scores) best first, only matches."""

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def __len__(self) -> int: ...


@runtime_checkable
class Retriever(Protocol):
    """Returns the best hits for a query, best first."""

    def retrieve(self, query: str, k: int) -> list[Hit]: ...


@runtime_checkable
class Reranker(Protocol):
    """Re-scores hits against the query (sets ``Hit.rerank``) and returns them best first.
    ``warning`` says why it stepped aside (its model failed to load), else None."""

    name: str
    warning: str | None

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]: ...


@runtime_checkable
class Chunker(Protocol):
    """Splits a Document into Chunks that fit the embedder, keeping provenance."""

    def chunk(self, doc: Document) -> list[Chunk]: ...


@runtime_checkable
class Loader(Protocol):
    """Parses the bytes of one file (already type-detected) into one or more Documents."""

    kind: str

    def load(self, path: Path, data: bytes) -> Loaded: ...


@runtime_checkable
class Generator(Protocol):
    """Renders chat prompts, counts tokens with the model's tokenizer, generates in batches or
    streams one answer, or samples ``n`` answers to one prompt. ``temperature`` and ``model``
    override the configured ones per request; ``models()`` lists what ``model`` may name."""

    name: str
    context_window: int
    special_tokens: Collection[str]  # control tokens that quoted text must never spell

    def render(self, messages: list[dict[str, str]]) -> str: ...
    def count_tokens(self, text: str) -> int: ...
    def generate(self, prompts: Sequence[str], max_tokens: int,
                 temperature: float | None = None, model: str | None = None) -> list[Generation]: ...
    def stream(self, prompt: str, max_tokens: int, temperature: float | None = None,
               model: str | None = None) -> Iterator[Generation]: ...
    def sample(self, prompt: str, n: int, max_tokens: int, temperature: float,
               model: str | None = None) -> list[Generation]: ...
    def models(self) -> list[str]: ...
