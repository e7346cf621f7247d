"""PDF tables kept as tables (ingest.pdf_tables) vs the text layer's lines: where the chunk
holding a table cell's row ranks for a question about that cell, and what the table pass costs
in parsing time. The three papers with booktabs tables in ../shared/corpora/papers (Attention,
Burrows-Wheeler, U-Net), hybrid search with the configured embedder, k=10.

A hit counts when its chunk holds the row (the row's label and the asked value); "as table"
when that chunk holds them as a Markdown table row. Writes bench/results/pdf_tables.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from common import throwaway_folder

from ingest.loaders import load_file
from rag.core.config import load_settings
from rag.core.types import LoadOptions
from rag.service.pipeline import Pipeline

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "papers"
OUT = Path(__file__).with_name("results") / "pdf_tables.json"
FILES = ["1706.03762v7.pdf", "burrows-wheeler.pdf", "Unet.pdf"]
QUESTIONS = [  # question, the row's label, the asked value
    ("What BLEU score did the big Transformer get on English-to-German?", "Transformer (big)",
     "28.4"),
    ("What BLEU did ConvS2S reach on English-to-French?", "ConvS2S", "40.46"),
    ("What was the development perplexity of the base Transformer model?", "base", "4.92"),
    ("What F1 did the 4-layer Transformer get on WSJ when trained semi-supervised?",
     "semi-supervised", "92.7"),
    ("How many bits per character did gzip need?", "gzip", "2.71"),
    ("What was the compressed size of book1 in bytes?", "book1", "238989"),
    ("What warping error did u-net get in the EM segmentation challenge?", "u-net", "0.000353"),
    ("What IOU did u-net achieve on the DIC-HeLa data set?", "u-net (2015)", "0.7756"),
]


def rank(pipeline: Pipeline, question: str, label: str, value: str) -> dict[str, object]:
    for i, hit in enumerate(pipeline.search(question, k=10, mode="hybrid").hits, start=1):
        lines = [line for line in hit.chunk.text.splitlines() if label in line and value in line]
        if lines:
            return {"rank": i, "as_table": any(line.startswith("|") for line in lines)}
    return {"rank": None, "as_table": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=Path, default=PAPERS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    folder = throwaway_folder("rag-tables-")
    for name in FILES:
        shutil.copy(args.papers / name, folder / name)
    os.environ["RAG_HOME"] = str(folder / "home")
    settings = load_settings()
    results: dict[str, object] = {"embedder": settings.embedder.model, "files": FILES}
    parse = {}
    for name in FILES:
        data = (folder / name).read_bytes()
        seconds = {}
        for on in (False, True):
            start = time.perf_counter()
            load_file(folder / name, data, LoadOptions(ocr="off", pdf_tables=on))
            seconds["tables" if on else "lines"] = round(time.perf_counter() - start, 2)
        parse[name] = seconds
    results["parse_seconds"] = parse
    embedder = None
    for on in (False, True):
        config = settings.model_copy(update={"ingest": settings.ingest.model_copy(
            update={"pdf_tables": on})})
        pipeline = Pipeline(config, f"tables-{on}", embedder=embedder)
        embedder = pipeline.embedder
        pipeline.index([folder / name for name in FILES])
        found = [{"question": q, **rank(pipeline, q, label, value)} for q, label, value in
                 QUESTIONS]
        ranks = [f["rank"] for f in found]
        results["tables" if on else "lines"] = {
            "top1": sum(r == 1 for r in ranks), "top3": sum(r is not None and r <= 3
                                                            for r in ranks),
            "top10": sum(r is not None for r in ranks),
            "as_table": sum(bool(f["as_table"]) for f in found), "questions": found}
        print("tables" if on else "lines", {k: v for k, v in results[
            "tables" if on else "lines"].items() if k != "questions"}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
