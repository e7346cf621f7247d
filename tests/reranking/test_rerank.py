from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.config import RerankerSettings
from rag.core.errors import ModelLoadError
from rag.core.types import Chunk, Hit
from rag.embedding.embedder import resolve_model_path
from rag.reranking.cross_encoder import CrossEncoderReranker


def hits(*texts: str) -> list[Hit]:
    return [Hit(Chunk(t, "d", "k", "s", "t", 1, None, 0, len(t), i), f"c{i}", 1.0 / (i + 1))
            for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder built from the bundled MiniLM weights (random head, seeded)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(resolve_model_path("bundled:all-MiniLM-L6-v2"), num_labels=1,
                         device="cpu")
    folder = tmp_path_factory.mktemp("ce")
    model.save_pretrained(str(folder))
    return folder


@pytest.mark.integration
def test_any_local_cross_encoder_plugs_in(cross_encoder_dir: Path) -> None:
    reranker = CrossEncoderReranker(RerankerSettings(model=str(cross_encoder_dir), top_n=3),
                                    device="cpu")
    out = reranker.rerank("what do cats do", hits("cats purr", "dogs bark", "fish swim", "x"))
    assert reranker.warning is None
    head = out[:3]
    assert all(h.rerank is not None for h in head) and out[3].rerank is None
    assert [h.rerank for h in head] == sorted((h.rerank for h in head), reverse=True)


def test_missing_model_warns_once_and_passes_through(tmp_path: Path) -> None:
    reranker = CrossEncoderReranker(RerankerSettings(model=str(tmp_path / "none")))
    original = hits("a", "b")
    assert reranker.rerank("q", original) == original
    assert reranker.warning and "continuing without reranking" in reranker.warning
    assert reranker.rerank("q", hits("c")) and not reranker.available


def test_required_missing_model_raises(tmp_path: Path) -> None:
    reranker = CrossEncoderReranker(RerankerSettings(model=str(tmp_path / "none"), required=True))
    with pytest.raises(ModelLoadError, match="cannot load reranker"):
        reranker.rerank("q", hits("a"))
