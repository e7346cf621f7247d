"""Sparse retrieval with bm25s: English stopwords and Snowball stemming on both sides."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _bm25s():  # noqa: ANN202 - the module
    """bm25s, imported late (0.3 s); its import sets its own logger to DEBUG, so quiet it after."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.ERROR)
    return bm25s


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import Stemmer

    bm25s = _bm25s()

    return bm25s.tokenize(
        list(texts),
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        return_ids=False,
        show_progress=False,
    )


class Bm25Index:
    """Rows are positions in the snapshot's id list, like the FAISS index's. Chunks with no
    word that counts (stopwords, one letter, punctuation: a file of "# h" headings) give an
    empty vocabulary, which bm25s cannot index: such an index is saved empty and finds
    nothing, while the dense index serves the KB."""

    def __init__(self, model: object, size: int, indexed: bool = True) -> None:
        self._model = model
        self._size = size
        self._indexed = indexed and size > 0

    @classmethod
    def build(cls, texts: Sequence[str]) -> Bm25Index:
        model = _bm25s().BM25()
        tokens = _tokenize(texts) if texts else []
        indexed = any(tokens)
        if indexed:
            model.index(tokens, show_progress=False)
        return cls(model, len(texts), indexed)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._indexed:
            self._model.save(str(folder), show_progress=False)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: Path, size: int) -> Bm25Index:
        bm25s = _bm25s()
        if not size or not (folder.is_dir() and any(folder.iterdir())):
            return cls(bm25s.BM25(), size, indexed=False)
        return cls(bm25s.BM25.load(str(folder), show_progress=False), size)

    def __len__(self) -> int:
        return self._size

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) best first; empty when no query term is in the vocabulary."""
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        tokens = _tokenize([query])[0]
        vocab = getattr(self._model, "vocab_dict", {}) or {}
        tokens = [t for t in tokens if t in vocab]
        if not self._indexed or not tokens:
            return empty
        rows, scores = self._model.retrieve(  # type: ignore[attr-defined]
            [tokens], k=min(k, self._size), show_progress=False, n_threads=0
        )
        keep = scores[0] > 0
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)
