"""Retrieval evaluation on any BEIR folder with ir-measures (pytrec_eval underneath).

Chunks are scored per document by their best rank (MaxP), as BEIR documents may span chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import ir_measures
from ir_measures import AP, RR, R, nDCG

from rag.core.errors import DatasetError
from rag.core.types import Hit
from rag.retrieval.retrievers import Fusion, FusionMethod
from rag.service.pipeline import Pipeline

MEASURES = {"nDCG@10": nDCG @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10, "MAP": AP @ 100}
DEPTH = 100


@dataclass
class BeirDataset:
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @classmethod
    def load(cls, folder: Path, split: str = "test") -> BeirDataset:
        corpus, queries_file = folder / "corpus.jsonl", folder / "queries.jsonl"
        qrels_file = folder / "qrels" / f"{split}.tsv"
        for needed in (corpus, queries_file, qrels_file):
            if not needed.is_file():
                raise DatasetError(f"not a BEIR dataset: {needed} is missing")
        qrels: dict[str, dict[str, int]] = {}
        for line in qrels_file.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[0] in {"query-id", "query_id"}:
                continue
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError:
                continue
        queries = {}
        for line in queries_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = str(row["text"])
        if not queries:
            raise DatasetError(f"no queries of {queries_file} have judgements in {qrels_file}")
        return cls(corpus, queries, qrels)


def run_mode(
    pipeline: Pipeline, queries: dict[str, str], mode: str, rerank: bool,
    tick: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, float]]:
    """TREC-style run {query id: {doc id: score}} with the document's best chunk rank as score."""
    run: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        run[qid] = _by_document(pipeline.search(text, k=DEPTH * 2, mode=mode, rerank=rerank).hits)
        tick()
    return run


def _by_document(hits: Sequence[Hit]) -> dict[str, float]:
    docs: dict[str, float] = {}
    for rank, hit in enumerate(hits):
        if hit.chunk.doc_key not in docs and len(docs) < DEPTH:
            docs[hit.chunk.doc_key] = float(len(hits) - rank)
    return docs


@dataclass
class ModeResult:
    mode: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    seconds: float


def measure(dataset: BeirDataset, run: dict[str, dict[str, float]]) -> tuple[
        dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query measures of a run."""
    names = {str(m): name for name, m in MEASURES.items()}
    # A query with no hits scores 0 on every measure (pytrec_eval would skip it).
    per_query = {qid: dict.fromkeys(MEASURES, 0.0) for qid in dataset.queries}
    for m in ir_measures.iter_calc(list(MEASURES.values()), dataset.qrels, run):
        per_query[m.query_id][names[str(m.measure)]] = float(m.value)
    metrics = {name: round(sum(q[name] for q in per_query.values()) / len(per_query), 4)
               for name in MEASURES}
    return metrics, per_query


def evaluate(
    pipeline: Pipeline, dataset: BeirDataset, modes: Sequence[str], rerank: bool = False,
    tick: Callable[[], None] = lambda: None,
) -> list[ModeResult]:
    results = []
    for mode in modes:
        started = time.perf_counter()
        run = run_mode(pipeline, dataset.queries, mode, rerank, tick)
        elapsed = time.perf_counter() - started
        metrics, per_query = measure(dataset, run)
        results.append(ModeResult(mode, metrics, per_query, round(elapsed, 2)))
    return results


def fusion_sweep(
    pipeline: Pipeline, dataset: BeirDataset, weights: Sequence[float],
    tick: Callable[[], None] = lambda: None,
) -> dict[str, dict[float, dict[str, float]]]:
    """The measures of hybrid retrieval for each fusion method at each dense weight (BM25's is
    1 minus it): each query's two lists are fetched once, as hybrid search fetches them, then
    fused each way."""
    r = pipeline.settings.retrieval
    depth = max(DEPTH * 2, r.candidates)
    lists = {}
    for qid, text in dataset.queries.items():
        lists[qid] = [pipeline.search(text, k=depth, mode=mode, rerank=False).hits
                      for mode in ("dense", "bm25")]
        tick()
    return {method: {weight: measure(dataset, {
        qid: _by_document(Fusion(method, weight, r.rrf_k)(pair, DEPTH * 2))
        for qid, pair in lists.items()})[0] for weight in weights}
        for method in get_args(FusionMethod)}


def save_results(results: list[ModeResult], folder: Path, meta: dict[str, object]) -> Path:
    """summary.json plus one per-query JSONL per mode."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = {**meta, "modes": {r.mode: {**r.metrics, "seconds": r.seconds} for r in results}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    for r in results:
        with open(folder / f"per_query_{r.mode}.jsonl", "w") as out:
            for qid, values in sorted(r.per_query.items()):
                out.write(json.dumps({"query_id": qid, **values}) + "\n")
    return folder
