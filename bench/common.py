"""What the benchmarks share: SciFact arguments, throwaway folders, and latency."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = Path(__file__).with_name("results")


def scifact_args(doc: str | None, out: str, parser: argparse.ArgumentParser | None = None
                 ) -> argparse.Namespace:
    """--scifact and --out (bench/results/OUT), parsed; state goes to a new temporary RAG_HOME."""
    parser = parser or argparse.ArgumentParser(description=doc)
    parser.add_argument("--scifact", type=Path, default=SHARED / "datasets" / "scifact")
    parser.add_argument("--out", type=Path, default=RESULTS / out)
    args = parser.parse_args()
    os.environ["RAG_HOME"] = str(throwaway_folder())
    return args


def throwaway_folder(prefix: str = "rag-bench-") -> Path:
    """A new folder for this run (a RAG_HOME, a corpus, a model), deleted when the run ends: a
    RAG_HOME holds the bundled generator converted for vLLM (3.5 GB for the 1.5B model), and
    such folders piled up in /tmp until the disk was full."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def home_unless_set() -> Path:
    """RAG_HOME as the caller set it (to reuse its models and indexes), else a throwaway one,
    set in the environment for this run."""
    if "RAG_HOME" not in os.environ:
        os.environ["RAG_HOME"] = str(throwaway_folder())
    return Path(os.environ["RAG_HOME"])


def latency(pipeline, queries: list[str], mode: str) -> dict[str, float]:  # noqa: ANN001
    """p50/p95 of one search per query (after one warm-up search)."""
    pipeline.search(queries[0], mode=mode)
    times = []
    for q in queries:
        t = time.perf_counter()
        pipeline.search(q, k=10, mode=mode)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1)}


def right_doc_ranks(pipeline, questions: Path, k: int = 10, rerank: bool = False  # noqa: ANN001
                    ) -> list[int | None]:
    """For each answerable question of the set, the rank of the first hit from its right
    document in ``pipeline``'s search (None: not in the top ``k``)."""
    from eval.answers import load_questions

    ranks = []
    for q in load_questions(questions):
        if q.unanswerable or not q.right_docs:
            continue
        hits = pipeline.search(q.query or q.question, k=k, rerank=rerank).hits
        names = [Path(h.chunk.source).name for h in hits]
        right = {Path(d).name for d in q.right_docs}
        ranks.append(next((i for i, n in enumerate(names, 1) if n in right), None))
    return ranks


def shares(ranks: list[int | None], *cuts: int) -> dict[str, float]:
    """The share of ``ranks`` at rank 1 (``rank1``) and within each of ``cuts`` (``topN``)."""
    n = max(len(ranks), 1)
    out = {"questions": len(ranks), "rank1": round(sum(r == 1 for r in ranks) / n, 3)}
    out.update({f"top{c}": round(sum(r is not None and r <= c for r in ranks) / n, 3)
                for c in cuts})
    return out
