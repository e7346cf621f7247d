"""The reranker on SciFact test (300 claims): nDCG@10 of hybrid retrieval alone and with the
top N candidates reranked, for several N; and the reranking time per query (median and p95 of
the model's own time for N candidates, in one run on this machine).

Indexes SciFact into a throwaway RAG_HOME (or reuses --home's beir-scifact KB). Writes
bench/results/rerank.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import RESULTS, SHARED, throwaway_folder

from eval.retrieval import BeirDataset, evaluate
from rag.core.config import load_settings
from rag.core.hardware import cpu_name, native_bf16_cpu
from rag.service.pipeline import Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, default=SHARED / "datasets" / "scifact")
    parser.add_argument("--home", type=Path, help="a RAG_HOME whose beir-scifact KB to reuse")
    parser.add_argument("--top-n", default="10,20,30,50")
    parser.add_argument("--out", type=Path, default=RESULTS / "rerank.json")
    args = parser.parse_args()
    if args.home:
        os.environ["RAG_HOME"] = str(args.home)
    else:
        os.environ["RAG_HOME"] = str(throwaway_folder())
    settings = load_settings()
    data = BeirDataset.load(args.scifact, "test")
    pipeline = Pipeline(settings, "beir-scifact")
    pipeline.index([data.corpus])
    results: dict[str, object] = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, native bf16: {native_bf16_cpu()}",
        "date": time.strftime("%Y-%m-%d"), "reranker": settings.reranker.model, "modes": {}}
    base = evaluate(pipeline, data, ["hybrid"], rerank=False)[0]
    results["modes"]["hybrid"] = base.metrics  # type: ignore[index]
    print("hybrid", base.metrics, flush=True)
    reranker = pipeline.reranker
    for n in (int(x) for x in args.top_n.split(",")):
        reranker.settings = settings.reranker.model_copy(update={"top_n": n})  # type: ignore[attr-defined]
        times: list[float] = []
        real = reranker.rerank

        def timed(query, hits, real=real, times=times):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            out = real(query, hits)
            times.append(time.perf_counter() - started)
            return out

        reranker.rerank = timed  # type: ignore[method-assign]
        result = evaluate(pipeline, data, ["hybrid"], rerank=True)[0]
        reranker.rerank = real  # type: ignore[method-assign]
        row = {**result.metrics, "rerank_s_median": round(float(np.median(times)), 3),
               "rerank_s_p95": round(float(np.percentile(times, 95)), 3)}
        results["modes"][f"hybrid + rerank top {n}"] = row  # type: ignore[index]
        print(f"top {n}", row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
