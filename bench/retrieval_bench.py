"""Indexing time (papers, SciFact) and query latency p50/p95 per mode (embedding throughput:
bench/embed_bench.py).

Uses ../shared beside the checkout when present (the project never needs it to run).
Writes bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from common import SHARED, scifact_args
from common import latency as measure

from eval.retrieval import BeirDataset
from rag.core.config import load_settings
from rag.service.pipeline import MODES, Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=Path, default=SHARED / "corpora" / "papers")
    parser.add_argument("--queries", type=int, default=100)
    args = scifact_args(None, "retrieval.json", parser)
    settings = load_settings()
    results: dict[str, object] = {"embedder": settings.embedder.model,
                                  "cpus": os.cpu_count()}

    pipeline = Pipeline(settings, "papers")
    embedder = pipeline.embedder  # throughput per dtype and batch: bench/embed_bench.py

    report = pipeline.index([args.papers])
    results["index_papers"] = {"files": report.indexed, "chunks": report.chunks_added,
                               "seconds": report.seconds}
    rerun = pipeline.index([args.papers])
    results["reindex_papers_unchanged_s"] = rerun.seconds
    print("papers", results["index_papers"], flush=True)

    if (args.scifact / "corpus.jsonl").exists():
        data = BeirDataset.load(args.scifact)
        sf = Pipeline(settings, "scifact", embedder=embedder)
        report = sf.index([data.corpus])
        results["index_scifact"] = {"documents": 5183, "chunks": report.chunks_added,
                                    "seconds": report.seconds}
        print("scifact", results["index_scifact"], flush=True)
        queries = list(data.queries.values())[: args.queries]
        latency = {mode: measure(sf, queries, mode) for mode in MODES}
        results["query_latency_scifact"] = latency
        print("latency", latency, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
