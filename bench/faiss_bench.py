"""FAISS flat vs IVF vs HNSW on synthetic clustered 384-d vectors (default 1M).

Build time, single-query latency p50/p95, recall@10 against exact search, index memory.
Writes bench/results/faiss.json. Not a test: run with `make bench` or directly.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag.core.config import IndexSettings
from rag.storage.faiss_index import build_index, tune

OUT = Path(__file__).with_name("results") / "faiss.json"


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Mixture of 1,000 Gaussian clusters on the unit sphere, like real embeddings' structure
    (a point's nearest neighbours have cosine similarity near 0.9)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((1000, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        end = min(n, start + 100_000)
        labels = rng.integers(0, 1000, end - start)
        block = centers[labels] + 0.35 * rng.standard_normal((end - start, dim)).astype(np.float32)
        out[start:end] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import faiss

    # Queries come from the same clusters as the data but are not indexed themselves.
    everything = clustered(args.n + args.queries, args.dim)
    data, queries = everything[: args.n], everything[args.n :]
    results: dict[str, object] = {
        "n": args.n, "dim": args.dim, "queries": args.queries, "machine": platform.processor()
        or platform.machine(), "threads": faiss.omp_get_max_threads(), "indexes": {},
    }
    truth = None
    configs = {
        "flat": IndexSettings(kind="flat", gpu="never"),
        "ivf": IndexSettings(kind="ivf", gpu="never"),  # defaults: 4*sqrt(N) lists, nprobe=16
        "hnsw": IndexSettings(kind="hnsw", gpu="never"),  # defaults: M=32, efSearch=128
    }
    for name, settings in configs.items():
        started = time.perf_counter()
        index = tune(build_index(data, args.dim, settings), settings)
        build_s = time.perf_counter() - started
        latencies, rows = [], []
        for q in tqdm(queries, desc=f"{name} queries", leave=False):
            t = time.perf_counter()
            _, r = index.search(q[None, :], 10)
            latencies.append((time.perf_counter() - t) * 1000)
            rows.append(r[0])
        if truth is None:
            truth = rows
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth, strict=True)]))
        results["indexes"][name] = {  # type: ignore[index]
            "build_s": round(build_s, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 3),
            "p95_ms": round(float(np.percentile(latencies, 95)), 3),
            "recall@10_vs_flat": round(recall, 4),
            "memory_mb": round(faiss.serialize_index(index).nbytes / 2**20, 1),
        }
        print(name, results["indexes"][name], flush=True)  # type: ignore[index]
        del index
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
