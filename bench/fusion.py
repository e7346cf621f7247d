"""Hybrid search's two fusions side by side, in one run on this machine: score fusion (each
list's scores over its best, weighted) and reciprocal rank fusion.

- SciFact: the whole sweep (both methods, dense weights 0 to 1) on train, as `rag eval fusion`
  chooses `MEASURED_FUSION`, and on test (reported, never chosen on);
- the papers and docs question sets: where the first passage that states the answer (in the
  right document) ranks in hybrid search, each method at the weight it uses: at rank 1, within
  the first 4 (about what a 750-token passage budget holds) and the mean reciprocal rank.

Uses ../shared beside the checkout (SciFact, the papers); state goes to a new temporary RAG_HOME.
Writes bench/results/fusion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import get_args

from common import SHARED, scifact_args

from eval.answers import fact_found, load_questions
from eval.evaluators import FusionEvaluator
from eval.retrieval import BeirDataset
from rag.core.config import load_settings
from rag.core.hardware import cpu_name, native_bf16_cpu
from rag.retrieval.retrievers import Fusion, FusionMethod
from rag.service.pipeline import Pipeline, fusion_of

ROOT = Path(__file__).resolve().parents[1]
SETS = {"papers": SHARED / "corpora" / "papers", "docs": ROOT / "docs"}
BUDGET_PASSAGES = 4


def answer_ranks(pipeline: Pipeline, questions: Path, fusions: dict[str, Fusion]
                 ) -> dict[str, dict[str, float]]:
    """Per fusion: the share of answerable questions whose answering passage is at rank 1 and
    within ``BUDGET_PASSAGES``, and the mean reciprocal rank (0 when not in the top 50)."""
    lists = []
    for q in load_questions(questions):
        if q.unanswerable or not q.answers:
            continue
        text = q.query or q.question
        lists.append((q, [pipeline.search(text, k=100, mode=m, rerank=False).hits
                          for m in ("dense", "bm25")]))
    out = {}
    for name, fusion in fusions.items():
        ranks = []
        for q, pair in lists:
            right = {Path(d).name for d in q.right_docs}
            hits = fusion(pair, 50)
            ranks.append(next((i for i, h in enumerate(hits, 1)
                               if fact_found(h.chunk.text, q.answers)
                               and (not right or Path(h.chunk.source).name in right)), None))
        out[name] = {"questions": len(ranks),
                     "rank1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
                     f"top{BUDGET_PASSAGES}": round(sum(r is not None and r <= BUDGET_PASSAGES
                                                       for r in ranks) / len(ranks), 3),
                     "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = scifact_args(None, "fusion.json", parser)
    settings = load_settings()
    chosen = fusion_of(settings)
    fusions = {m: fusion_of(settings.model_copy(update={
        "retrieval": settings.retrieval.model_copy(update={"fusion": m})}))
        for m in get_args(FusionMethod)}  # each at the weight `auto` gives it
    result: dict[str, object] = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, native bf16: {native_bf16_cpu()}",
        "date": time.strftime("%Y-%m-%d"), "embedder": settings.embedder.model,
        "default": {"fusion": chosen.method, "dense_weight": chosen.dense_weight},
        "compared": {n: {"dense_weight": f.dense_weight} for n, f in fusions.items()}}
    if (args.scifact / "corpus.jsonl").exists():
        pipeline = Pipeline(settings, "scifact")
        pipeline.index([BeirDataset.load(args.scifact, "train").corpus])
        for split in ("train", "test"):
            data = BeirDataset.load(args.scifact, split)
            sweep = FusionEvaluator(data, "scifact", split)(pipeline)
            result[f"scifact_{split}"] = {
                "best": sweep["best"],
                "ndcg@10": {m: {w: x["nDCG@10"] for w, x in by_weight.items()}
                            for m, by_weight in sweep["methods"].items()}}
            print(split, sweep["best"], flush=True)
    for name, corpus in SETS.items():
        if not corpus.exists():
            continue
        pipeline = Pipeline(settings, name)
        pipeline.index([corpus])
        result[name] = answer_ranks(pipeline, ROOT / "eval" / "questions" / f"{name}.jsonl",
                                    fusions)
        print(name, result[name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
