"""Family prefixes are data; checked without downloading any BGE/E5 model."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.config import EmbedderSettings
from rag.core.errors import ModelLoadError
from rag.embedding.embedder import (
    BGE_EN_QUERY,
    SentenceTransformerEmbedder,
    detect_family,
    resolve_model_path,
)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("intfloat/e5-base-v2", "e5"),
        ("intfloat/multilingual-e5-large", "e5"),
        ("/models/e5-small-v2/", "e5"),
        ("intfloat/e5-mistral-7b-instruct", "none"),
        ("BAAI/bge-base-en-v1.5", "bge"),
        ("BAAI/bge-small-en", "bge"),
        ("BAAI/bge-m3", "none"),
        ("sentence-transformers/all-MiniLM-L6-v2", "none"),
        ("bundled:all-MiniLM-L6-v2", "none"),
    ],
)
def test_detect_family(name: str, family: str) -> None:
    assert detect_family(name) == family


def test_unknown_bundled_model() -> None:
    with pytest.raises(ModelLoadError, match="no bundled embedder"):
        resolve_model_path("bundled:nope")


def test_unreachable_model_is_a_clear_error(tmp_path) -> None:  # noqa: ANN001
    emb = SentenceTransformerEmbedder(EmbedderSettings(model=str(tmp_path / "missing-model")))
    with pytest.raises(ModelLoadError, match="cannot load embedding model"):
        emb.embed_query("x")


@pytest.mark.integration
@pytest.mark.parametrize(("family", "query", "doc"), [
    ("e5", "query: ", "passage: "), ("bge", BGE_EN_QUERY, ""), ("none", "", "")])
def test_prefixes_are_applied(family: str, query: str, doc: str) -> None:
    """The bundled weights stand in for an E5/BGE model: same code path, forced family."""
    emb = SentenceTransformerEmbedder(EmbedderSettings(family=family, device="cpu",  # type: ignore[arg-type]
                                                       dtype="float32"))
    raw = emb.model
    q = emb.embed_query("what is attention")
    d = emb.embed_documents(["attention weighs tokens"])[0]
    expect_q = raw.encode(query + "what is attention", normalize_embeddings=True)
    expect_d = raw.encode(doc + "attention weighs tokens", normalize_embeddings=True)
    assert np.allclose(q, expect_q, atol=1e-5) and np.allclose(d, expect_d, atol=1e-5)
    assert abs(np.linalg.norm(q) - 1) < 1e-5
    if doc:
        assert emb.max_tokens < raw.max_seq_length - 2  # the prefix costs tokens


@pytest.mark.integration
def test_bf16_vectors_are_unit_and_close_to_fp32() -> None:
    texts = ["attention weighs tokens", "Huffman codes are minimum-redundancy codes."]
    fp32, bf16 = (SentenceTransformerEmbedder(EmbedderSettings(device="cpu", dtype=dtype))  # type: ignore[arg-type]
                  .embed_documents(texts) for dtype in ("float32", "bfloat16"))
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1, atol=1e-5)
    assert ((fp32 * bf16).sum(axis=1) > 0.99).all()


@pytest.mark.integration
def test_int8_onnx_vectors_are_close_to_the_pytorch_ones(tmp_path) -> None:  # noqa: ANN001
    """embedder.dtype = "int8" (ONNX Runtime): the same texts and prompts give unit vectors
    close to the PyTorch ones (cosine to fp32 measured mean 0.992, min 0.967, on real chunks)."""
    pytest.importorskip("onnxruntime")

    texts = ["attention weighs tokens", "Huffman codes are minimum-redundancy codes.", "short",
             "Cats purr. " * 80]
    fp32 = SentenceTransformerEmbedder(EmbedderSettings(device="cpu", dtype="float32", family="e5"))
    int8 = SentenceTransformerEmbedder(EmbedderSettings(device="cpu", dtype="int8", family="e5"),
                                       cache=tmp_path)
    for a, b in ((fp32.embed_documents(texts), int8.embed_documents(texts)),
                 (fp32.embed_queries(texts), int8.embed_queries(texts))):
        assert np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
        assert ((a * b).sum(axis=1) > 0.97).all()
    assert int8.dtype == "int8" and list(tmp_path.glob("onnx/*/model-int8.onnx"))
    # Made once: a second embedder reuses the graph.
    again = SentenceTransformerEmbedder(EmbedderSettings(device="cpu", dtype="int8", family="e5"),
                                        cache=tmp_path)
    assert np.allclose(again.embed_documents(texts[:1]), int8.embed_documents(texts[:1]))
