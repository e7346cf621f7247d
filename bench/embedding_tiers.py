"""Embedding tiers side by side: all-MiniLM-L6-v2 (the default) and embeddinggemma-300m (the
quality tier, `rag models install embeddinggemma-300m`).

For each tier, in a RAG_HOME of its own (``--homes/TIER``, kept between runs so that a second run
reuses the indexes): SciFact test nDCG@10 of dense, BM25 and hybrid retrieval at the fusion weight
the tier uses, the whole fusion sweep on SciFact train (`rag eval fusion`), embedding throughput
on 256 SciFact chunks, and over the papers and docs question sets the share of answerable
questions whose right document is at rank 1 of hybrid search (and within the top 5). With
``--answers``, `rag eval answers` on both sets (fact found, right document cited) from a
running `rag serve-llm`. Writes bench/results/embedding_tiers.json (one entry per tier).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, SHARED, right_doc_ranks, shares

ROOT = Path(__file__).resolve().parents[1]
RAG = [sys.executable, "-m", "rag.cli.main"]
TIERS = {"minilm": "bundled:all-MiniLM-L6-v2", "embeddinggemma": "bundled:embeddinggemma-300m"}
SETS = {"papers": SHARED / "corpora" / "papers", "docs": ROOT / "docs"}


def rag(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([*RAG, *args, "--json"], env=env, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout)


def rank_of_right_doc(home: Path, model: str) -> dict[str, dict[str, float]]:
    """Per question set: answerable questions with the right document at hybrid rank 1, top 5."""
    os.environ.update(RAG_HOME=str(home), RAG_EMBEDDER__MODEL=model)
    from rag.core.config import load_settings
    from rag.service.pipeline import Pipeline

    settings = load_settings()
    out = {}
    for name, corpus in SETS.items():
        pipeline = Pipeline(settings, name)
        pipeline.index([corpus])
        ranks = right_doc_ranks(pipeline, ROOT / "eval" / "questions" / f"{name}.jsonl")
        out[name] = shares(ranks, 5)
    return out


def throughput(model: str, home: Path, scifact: Path) -> dict[str, float | str]:
    """Chunks per second embedding 256 SciFact chunks (after a warm-up batch)."""
    from rag.core.config import EmbedderSettings
    from rag.embedding.embedder import SentenceTransformerEmbedder

    rows = [json.loads(line) for line in (scifact / "corpus.jsonl").open()][:256]
    texts = [f"{r['title']}\n{r['text']}" for r in rows]
    embedder = SentenceTransformerEmbedder(EmbedderSettings(model=model), home=home)
    embedder.embed_documents(texts[:16])
    started = time.perf_counter()
    embedder.embed_documents(texts)
    return {"chunks_per_s": round(len(texts) / (time.perf_counter() - started), 1),
            "vectors": embedder.dtype, "dimension": embedder.dim,
            "passage_tokens": embedder.max_tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, default=SHARED / "datasets" / "scifact")
    parser.add_argument("--homes", type=Path, default=Path("/tmp/rag-tiers"),
                        help="one RAG_HOME per tier beneath this folder (reused)")
    parser.add_argument("--models", type=Path, default=Path("~/.rag/models").expanduser(),
                        help="where embeddinggemma-300m is installed (linked into each home)")
    parser.add_argument("--tier", action="append", choices=TIERS, help="default: both")
    parser.add_argument("--answers", action="store_true",
                        help="also rag eval answers on papers and docs (needs rag serve-llm)")
    parser.add_argument("--out", type=Path, default=RESULTS / "embedding_tiers.json")
    args = parser.parse_args()
    from rag.core.hardware import cpu_name, native_bf16_cpu

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for tier in args.tier or list(TIERS):
        model, home = TIERS[tier], args.homes / tier
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "models").exists():
            (home / "models").symlink_to(args.models.resolve(), target_is_directory=True)
        env = {**os.environ, "RAG_HOME": str(home), "RAG_EMBEDDER__MODEL": model}
        entry: dict[str, object] = {
            "model": model, "date": time.strftime("%Y-%m-%d"),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, native bf16: {native_bf16_cpu()}",
            "throughput": throughput(model, home, args.scifact)}
        print(tier, entry["throughput"], flush=True)
        fusion = rag(env, "eval", "fusion", "--dataset", str(args.scifact), "--split", "train")
        entry["fusion_train"] = {method: {w: m["nDCG@10"] for w, m in by_weight.items()}
                                 for method, by_weight in fusion["methods"].items()}
        entry["fusion_train_best"] = fusion["best"]
        test = rag(env, "eval", "retrieval", "--dataset", str(args.scifact), "--split", "test")
        entry["scifact_test"] = {mode: {k: m[k] for k in ("nDCG@10", "Recall@100")}
                                 for mode, m in test["modes"].items()}
        print(tier, entry["scifact_test"], flush=True)
        entry["question_sets"] = rank_of_right_doc(home, model)
        print(tier, entry["question_sets"], flush=True)
        if args.answers:
            for name in SETS:
                summary = rag(env, "eval", "answers", "--dataset",
                              str(ROOT / "eval" / "questions" / f"{name}.jsonl"), "--kb", name,
                              "--output", str(home / "eval" / f"answers-{name}"))
                metrics = summary["metrics"]
                entry["question_sets"][name].update(  # type: ignore[index]
                    {k: metrics[k] for k in ("fact_found", "right_doc_cited", "refusal_f1")
                     if k in metrics})
        results[tier] = entry
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
