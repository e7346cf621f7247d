"""Cross-encoder reranking with any sentence-transformers CrossEncoder: hub id, local folder
(``rag train reranker`` writes one under ``$RAG_HOME/models/reranker-minilm/model``) or a
``bundled:NAME`` shipped with the code. The top ``reranker.top_n`` hits are scored in batches,
at the embedder's precision (``embedder.dtype``; auto: bfloat16 on CPUs that compute it
natively), and reordered; the rest keep retrieval's order below them."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rag.core.config import RerankerSettings, Settings
from rag.core.errors import ModelLoadError
from rag.core.hardware import cross_encoder_dtype, encoder_device
from rag.core.types import Hit

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Loads on first use. If the model cannot load and is not required, it says so once and
    passes hits through unchanged (``available`` turns False); if required, it raises."""

    def __init__(self, settings: RerankerSettings, device: str = "auto",
                 home: Path | None = None, dtype: str = "auto") -> None:
        self.settings = settings
        self.name = settings.model
        self.device, self.dtype = device, dtype  # embedder.device and embedder.dtype
        self.home = home or Path("~/.rag").expanduser()
        self._model: CrossEncoder | None = None
        self._lock = threading.Lock()
        self.available = True
        self.warning: str | None = None

    @classmethod
    def configured(cls, settings: Settings) -> CrossEncoderReranker:
        """The reranker the settings name, on the embedder's device and at its precision."""
        return cls(settings.reranker, settings.embedder.device, settings.home,
                   settings.embedder.dtype)

    def _load(self) -> CrossEncoder | None:
        if self._model is None and self.available:
            import torch
            from sentence_transformers import CrossEncoder

            from rag.bundled import resolve

            try:
                path = resolve(self.settings.model, self.home)
                device = encoder_device(self.device)
                dtype = getattr(torch, cross_encoder_dtype(self.dtype, device))
                self._model = CrossEncoder(path, device=device, max_length=256,
                                           model_kwargs={"dtype": dtype})
            except Exception as exc:
                message = f"cannot load reranker {self.settings.model!r}: {exc}"
                if self.settings.required:
                    raise ModelLoadError(message) from exc
                self.available = False
                self.warning = message.splitlines()[0][:300] + "; continuing without reranking"
                log.warning(self.warning)
        return self._model

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        with self._lock:  # one tokenizer, shared by UI sessions
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
