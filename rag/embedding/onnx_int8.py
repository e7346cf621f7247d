"""The embedder as an int8 ONNX Runtime graph (``embedder.dtype = "int8"``), for CPUs without
native bf16, where PyTorch runs the embedder in fp32 near the cores' fp32 FMA peak.

On a 2-core AVX2-only AMD EPYC it measured 1.25x fp32's embedding speed (AVX2 has no VNNI, so
int8 gains little) for 0.005 less hybrid SciFact nDCG@10, so ``auto`` does not choose it.

The graph is exported from the loaded sentence-transformers model (its transformer, pooling and
any dense layers in one graph) and quantised with dynamic int8 weights, per output channel and
with reduced range (AVX2 without VNNI saturates the full int8 range: per-tensor full-range
weights measured cosine 0.94 to fp32, these 0.99). It is made once per model and kept in the
user's cache (``~/.cache/rag/onnx``). ONNX Runtime's BERT fusions measured no faster here, so
the graph is left to its own session-time optimisations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.core.folders import make_once

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# Bumped when the export or quantisation recipe changes, so old graphs are not reused.
RECIPE = "st-export-opset17+dynamic-int8-per-channel-reduce-range/1"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
GRAPH = "model-int8.onnx"


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return False
    return True


def model_key(source: str) -> str:
    """Names the graph for these weights: the recipe, the model's name or folder, and each
    weight file's path, size and modification time (cheap to read for a 1 GB model, and any
    change to the weights shows)."""
    parts = [RECIPE, source]
    folder = Path(source)
    for path in sorted(folder.rglob("*") if folder.is_dir() else []):
        if path.suffix in {".safetensors", ".bin", ".json"} and path.is_file():
            stat = path.stat()
            parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _whole(model: SentenceTransformer) -> Any:  # noqa: ANN401 - a torch module
    """The model from token ids to its sentence embedding, as one module to trace."""
    import torch

    class Whole(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            features = {"input_ids": input_ids, "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids}
            return self.model(features)["sentence_embedding"]

    return Whole().eval()


def export(model: SentenceTransformer, target: Path) -> Path:
    """``target/model-int8.onnx``, made once (rag.core.folders.make_once)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def fill(folder: Path) -> None:
        features = model.preprocess(["a short text", "a somewhat longer text for the export"])
        args = tuple(features.get(name, torch.zeros_like(features["input_ids"]))
                     for name in INPUTS)
        axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes as constants
            torch.onnx.export(_whole(model), args, str(folder / "fp32.onnx"),
                              input_names=list(INPUTS), output_names=["embedding"],
                              dynamic_axes={**axes, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing": for static int8
        try:
            quantize_dynamic(str(folder / "fp32.onnx"), str(folder / GRAPH),
                             weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                             extra_options={"DefaultTensorType": 1})  # 1: float
        finally:
            logging.getLogger().setLevel(quiet)
        (folder / "fp32.onnx").unlink()
        (folder / "recipe.json").write_text(json.dumps({"recipe": RECIPE}) + "\n")

    try:
        return make_once(target, GRAPH, fill) / GRAPH
    except OSError as exc:
        raise RuntimeError(f"cannot write the int8 graph under {target}: {exc}") from exc


class Int8Encoder:
    """Runs the int8 graph on batches of texts sorted by length (less padding)."""

    def __init__(self, model: SentenceTransformer, cache: Path, source: str) -> None:
        import onnxruntime as ort

        name = Path(source.rstrip("/")).name or "model"
        graph = export(model, cache / "onnx" / f"{name}-{model_key(source)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, len(os.sched_getaffinity(0)))
        self.session = ort.InferenceSession(str(graph), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.model = model
        log.info("int8 ONNX embedder from %s", graph)

    def encode(self, texts: list[str], prompt: str | None, batch_size: int) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            features = self.model.preprocess([texts[i] for i in rows], prompt=prompt)
            feed = {name: (features[name].numpy() if name in features
                           else np.zeros_like(features["input_ids"].numpy()))
                    for name in self.inputs}
            vecs = self.session.run(None, feed)[0]
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        assert out is not None
        return out
