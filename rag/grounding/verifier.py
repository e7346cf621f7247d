"""The claim verifier: a cross-encoder that reads one evidence sentence and one claim (a
sentence of an answer, a SciFact claim) and says whether the evidence supports it, contradicts
it, or neither. A passage supports a claim as well as its best sentence does, and contradicts it
as strongly as its most contradicting one (SciFact's rationale-selection pipelines read
abstracts the same way). Trained here (``rag train verifier``; shipped as
``bundled:verifier-minilm``); every pair of an answer is scored in one batch, and pairs already
scored are remembered, so the citation check, attribution and evidence highlighting read the
same numbers. It runs at the embedder's precision (``embedder.dtype``; auto: bfloat16 on CPUs
that compute it natively).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.core.errors import ModelLoadError
from rag.core.hardware import cross_encoder_dtype, encoder_device

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

SUPPORTS, CONTRADICTS, NEITHER = range(3)


@dataclass(frozen=True)
class Judgement:
    """How a passage bears on a claim: the best sentence's probabilities, and which sentence."""

    support: float
    contradiction: float
    sentence: int  # index into the passage's sentences of the most supporting one


class Verifier:
    """Loads on first use; thread-safe (one lock around the model, as for the embedder)."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 64,
                 max_length: int = 160, remember: int = 20_000, threshold: float = 0.5,
                 name: str | None = None, dtype: str = "auto") -> None:
        self.path, self.name, self.device, self.dtype = model, name or model, device, dtype
        self.threshold = threshold  # P(supports) from which a sentence counts as supported
        self.batch_size, self.max_length = batch_size, max_length
        self._model: CrossEncoder | None = None
        self._lock = threading.RLock()
        self._memory: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._remember = remember

    def _load(self) -> CrossEncoder:
        if self._model is None:
            import torch
            from sentence_transformers import CrossEncoder

            device = encoder_device(self.device)
            try:
                self._model = CrossEncoder(
                    self.path, device=device, max_length=self.max_length,
                    model_kwargs={"dtype": getattr(torch, cross_encoder_dtype(self.dtype, device))})
            except Exception as exc:
                raise ModelLoadError(f"cannot load the verifier {self.name!r}: "
                                     f"{str(exc).splitlines()[0][:300]}") from exc
        return self._model

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """(supports, contradicts, neither) per (evidence, claim) pair; each distinct pair is
        run once."""
        import torch

        with self._lock:
            todo = list(dict.fromkeys(p for p in pairs if p not in self._memory))
            if todo:
                probs = self._load().predict(todo, batch_size=self.batch_size,
                                             activation_fn=torch.nn.Softmax(dim=-1),
                                             show_progress_bar=False)
                for pair, row in zip(todo, np.asarray(probs, dtype=np.float64), strict=True):
                    self._memory[pair] = row
                while len(self._memory) > self._remember:
                    self._memory.popitem(last=False)
            out = [self._memory[p] for p in pairs]
            for p in pairs:
                self._memory.move_to_end(p)
        return np.stack(out) if out else np.zeros((0, 3))

    def judge(self, claims_and_sentences: Sequence[tuple[str, Sequence[str]]]) -> list[Judgement]:
        """Each (claim, passage sentences) judged by its best sentence, all in one batch."""
        flat = [(s, claim) for claim, sentences in claims_and_sentences for s in sentences]
        probs = self.probabilities(flat)
        out, at = [], 0
        for _, sentences in claims_and_sentences:
            part = probs[at:at + len(sentences)]
            at += len(sentences)
            if not len(part):
                out.append(Judgement(0.0, 0.0, 0))
                continue
            best = int(np.argmax(part[:, SUPPORTS]))
            out.append(Judgement(float(part[best, SUPPORTS]), float(part[:, CONTRADICTS].max()),
                                 best))
        return out
