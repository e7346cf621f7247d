"""`rag index --runner ray` vs `--runner local` on SciFact, in one run: wall time (Ray's includes
starting a local Ray), and whether both KBs hold identical chunk ids and vectors.

Writes bench/results/ray_runner.json.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from common import scifact_args

from eval.retrieval import BeirDataset
from rag.core.config import load_settings
from rag.service.pipeline import Pipeline


def main() -> None:
    args = scifact_args(__doc__, "ray_runner.json")
    corpus = BeirDataset.load(args.scifact).corpus
    results: dict[str, object] = {"cpus": os.cpu_count(), "corpus": str(corpus)}
    rows = {}
    for runner in ("local", "ray"):
        pipeline = Pipeline(load_settings(jobs={"runner": runner}), runner)
        started = time.perf_counter()
        report = pipeline.index([corpus])
        seconds = time.perf_counter() - started
        ids, _, vectors = pipeline.kb.store.current_rows(pipeline.embedder.dim)
        rows[runner] = (ids, vectors)
        results[runner] = {"seconds": round(seconds, 1), "chunks": len(ids),
                           "chunks_per_s": round(len(ids) / seconds, 1), "ok": report.ok}
        print(runner, results[runner], flush=True)
        pipeline.kb.close()
    (ids_l, vec_l), (ids_r, vec_r) = rows["local"], rows["ray"]
    results["identical_chunk_ids"] = ids_l == ids_r
    if ids_l == ids_r:
        results["max_abs_vector_diff"] = float(np.abs(vec_l - vec_r).max())
        results["min_cosine"] = float(np.min(np.sum(vec_l * vec_r, axis=1)))
    results["time_ratio_ray_over_local"] = round(
        results["ray"]["seconds"] / results["local"]["seconds"], 3)  # type: ignore[index]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
