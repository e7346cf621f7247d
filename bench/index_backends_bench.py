"""FAISS vs Milvus Lite on the same SciFact KB (embedded once, then published per backend):
SciFact nDCG@10 per mode, dense recall@10 against exact search, p50/p95 search latency and
publish time. Keyword search on Milvus Lite is measured both ways: the local bm25s index (the
default there) and Milvus Lite's own full-text BM25.

Writes bench/results/index_backends.json.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from common import latency, scifact_args

from eval.retrieval import BeirDataset, evaluate
from rag.core.config import load_settings
from rag.service.pipeline import Pipeline

SETUPS = {  # name: index settings
    "faiss-flat": {"backend": "faiss", "kind": "flat"},
    "faiss-hnsw": {"backend": "faiss", "kind": "hnsw"},
    "milvus-lite-flat": {"backend": "milvus", "kind": "flat"},
    "milvus-lite-hnsw": {"backend": "milvus", "kind": "hnsw"},
    "milvus-lite-flat-milvus-bm25": {"backend": "milvus", "kind": "flat", "milvus_bm25": "milvus"},
}


def main() -> None:
    args = scifact_args(__doc__, "index_backends.json")
    data = BeirDataset.load(args.scifact)
    queries = list(data.queries.values())
    first = Pipeline(load_settings(index=SETUPS["faiss-flat"]), "scifact")
    embedder = first.embedder
    report = first.index([data.corpus])
    results: dict[str, object] = {"cpus": os.cpu_count(), "chunks": report.chunks_added,
                                  "queries": len(queries), "index_s": report.seconds}
    first.kb.close()
    exact: list[list[str]] | None = None
    for name, index in SETUPS.items():
        pipeline = Pipeline(load_settings(index=index), "scifact", embedder=embedder)
        with pipeline.kb.writer():
            started = time.perf_counter()
            pipeline.kb.publish(embedder.dim)
            publish_s = time.perf_counter() - started
        top = [[h.chunk_id for h in pipeline.search(q, k=10, mode="dense").hits] for q in queries]
        exact = exact or top  # the first setup is exact search
        recall = float(np.mean([len(set(a) & set(b)) / max(1, len(b))
                                for a, b in zip(top, exact, strict=True)]))
        ndcg = {r.mode: round(r.metrics["nDCG@10"], 4)
                for r in evaluate(pipeline, data, ["dense", "bm25", "hybrid"])}
        results[name] = {"publish_s": round(publish_s, 2), "nDCG@10": ndcg,
                         "dense_recall@10_vs_exact": round(recall, 4),
                         "latency_dense": latency(pipeline, queries, "dense"),
                         "latency_hybrid": latency(pipeline, queries, "hybrid")}
        print(name, results[name], flush=True)
        pipeline.kb.close()
    base = results["faiss-flat"]["nDCG@10"]["hybrid"]  # type: ignore[index]
    results["hybrid_nDCG_gap_milvus_vs_faiss"] = round(
        results["milvus-lite-flat"]["nDCG@10"]["hybrid"] - base, 4)  # type: ignore[index]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
