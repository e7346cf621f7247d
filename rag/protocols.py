"""One small protocol per retrieval stage; concrete classes live in modules named for what they do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rag.types import Hit


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
    """Re-scores hits against the query (sets ``Hit.rerank``) and returns them best first."""

    name: str

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]: ...
