"""GPU paths: run only where faiss-gpu and CUDA are present."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.config import IndexSettings
from rag.storage.faiss_index import build_index, gpu_count, search, tune

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(gpu_count() == 0, reason="needs faiss-gpu and a CUDA device"),
]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_index_moves_to_gpu_and_agrees_with_cpu(kind: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = IndexSettings(kind=kind, nprobe=64)  # type: ignore[arg-type]
    cpu = tune(build_index(vectors, 64, settings), IndexSettings(kind=kind, gpu="never"))  # type: ignore[arg-type]
    gpu = tune(build_index(vectors, 64, settings), settings)
    assert "Gpu" in type(gpu).__name__
    rows_cpu, _ = search(cpu, vectors[:20], 10)
    rows_gpu, _ = search(gpu, vectors[:20], 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows_cpu, rows_gpu, strict=True)])
    assert overlap > 0.9
