"""Cross-encoder reranking; any sentence-transformers CrossEncoder (hub id or local folder)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rag.config import RerankerSettings
from rag.embedder import ModelLoadError, _device
from rag.types import Hit

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Loads on first use. If the model cannot load and is not required, it says so once and
    passes hits through unchanged (``available`` turns False); if required, it raises."""

    def __init__(self, settings: RerankerSettings, device: str = "auto") -> None:
        self.settings = settings
        self.name = settings.model
        self.device = device
        self._model: CrossEncoder | None = None
        self.available = True
        self.warning: str | None = None

    def _load(self) -> CrossEncoder | None:
        if self._model is None and self.available:
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(self.settings.model, device=_device(self.device))
            except Exception as exc:
                message = f"cannot load reranker {self.settings.model!r}: {exc}"
                if self.settings.required:
                    raise ModelLoadError(message) from exc
                self.available = False
                self.warning = message.splitlines()[0][:300] + "; continuing without reranking"
                log.warning(self.warning)
        return self._model

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        model = self._load()
        if model is None or not hits:
            return hits
        head, tail = hits[: self.settings.top_n], hits[self.settings.top_n :]
        scores = model.predict(
            [(query, h.chunk.embed_text or h.chunk.text) for h in head],
            batch_size=self.settings.batch_size,
            show_progress_bar=False,
        )
        for hit, score in zip(head, scores, strict=True):
            hit.rerank = float(score)
            hit.score = float(score)
        return sorted(head, key=lambda h: -(h.rerank or 0.0)) + tail
