"""Embedding throughput of the configured embedder per dtype and batch size, in one run (the
machines are noisy, so compare ratios), on real chunks: the papers corpus and SciFact abstracts
chunked as rag indexes them. Also how far each setting's vectors are from fp32's. int8 is the
ONNX Runtime graph (rag/embedding/onnx_int8.py), made before timing.

Uses ../shared beside the checkout when present. Writes bench/results/embedding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from ingest.chunking import TokenChunker
from ingest.loaders import load_file
from rag.core.config import EmbedderSettings
from rag.core.hardware import cpu_name, encoder_dtype, native_bf16_cpu
from rag.embedding.embedder import SentenceTransformerEmbedder

SHARED = Path(__file__).resolve().parents[2] / "shared"
OUT = Path(__file__).with_name("results") / "embedding.json"


def chunk_texts(papers: Path, scifact: Path, limit: int) -> list[str]:
    chunker = TokenChunker(SentenceTransformerEmbedder(EmbedderSettings(dtype="float32")))
    files = sorted(papers.glob("*.pdf")) + sorted(scifact.glob("corpus.jsonl"))
    docs = [d for p in files for d in load_file(p, p.read_bytes()).documents]
    texts = [c.embed_text for d in docs for c in chunker.chunk(d)]
    return texts[:limit // 2] + texts[-(limit - limit // 2):]  # papers, then abstracts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=Path, default=SHARED / "corpora" / "papers")
    parser.add_argument("--scifact", type=Path, default=SHARED / "datasets" / "scifact")
    parser.add_argument("--chunks", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    texts = chunk_texts(args.papers, args.scifact, args.chunks)
    tokens = SentenceTransformerEmbedder(EmbedderSettings(dtype="float32")).count_tokens(texts)
    results: dict[str, object] = {"cpus": os.cpu_count(), "cpu": cpu_name(),
                                  "native_bf16": native_bf16_cpu(), "chunks": len(texts),
                                  "mean_tokens": round(float(np.mean(tokens)), 1),
                                  "auto_dtype": encoder_dtype("auto", "cpu"), "settings": []}
    reference = None
    for dtype, batch in [("float32", 16), ("float32", 64), ("bfloat16", 16), ("bfloat16", 64),
                         ("int8", 16), ("int8", 64)]:
        embedder = SentenceTransformerEmbedder(
            EmbedderSettings(dtype=dtype, batch_size=batch, device="cpu"))
        embedder.embed_documents(texts[:32])  # load and warm up
        started = time.perf_counter()
        vecs = embedder.embed_documents(texts)
        seconds = time.perf_counter() - started
        if reference is None:
            reference = vecs
        row = {"dtype": dtype, "batch_size": batch, "seconds": round(seconds, 2),
               "chunks_per_s": round(len(texts) / seconds, 1),
               "min_cosine_to_fp32": round(float(np.min(np.sum(vecs * reference, axis=1))), 4),
               "mean_cosine_to_fp32": round(float(np.mean(np.sum(vecs * reference, axis=1))), 4)}
        results["settings"].append(row)  # type: ignore[union-attr]
        print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
