"""Parsing overlapped with embedding vs one after the other, in one run: the indexer hands file
n+1 to its parser child before it chunks and embeds file n. "sequential" waits for each parse
as the indexer did before (the parser's result is collected as soon as a file is handed over).

Corpus: ../shared/corpora/papers (8 PDFs, one scanned: OCR), fresh KB each time, the configured
embedder loaded once and shared; two rounds of each order, best of each. Writes
bench/results/parse_overlap.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from unittest import mock

from common import throwaway_folder

from ingest.parsing import ParseWorker
from rag.core.config import load_settings
from rag.service.pipeline import Pipeline

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "papers"
OUT = Path(__file__).with_name("results") / "parse_overlap.json"


def sequential() -> mock._patch:  # type: ignore[type-arg]
    """ParseWorker that parses each file as it is handed over: no overlap."""
    submit, result = ParseWorker.submit, ParseWorker.result
    done: dict[int, object] = {}

    def submit_and_wait(self: ParseWorker, path: Path, data: bytes) -> None:
        submit(self, path, data)
        try:
            done[id(self)] = ("ok", result(self))
        except Exception as exc:  # noqa: BLE001 - handed back by result() below
            done[id(self)] = ("error", exc)

    def collected(self: ParseWorker, cancel: object = None) -> object:
        kind, value = done.pop(id(self))
        if kind == "error":
            raise value  # type: ignore[misc]
        return value

    return mock.patch.multiple(ParseWorker, submit=submit_and_wait, result=collected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=Path, default=PAPERS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ["RAG_HOME"] = str(throwaway_folder("rag-overlap-"))
    settings = load_settings()
    embedder = None
    runs: dict[str, list[float]] = {"sequential": [], "overlapped": []}
    for round_ in range(2):
        for order in runs:
            pipeline = Pipeline(settings, f"{order}-{round_}", embedder=embedder)
            embedder = pipeline.embedder
            if order == "sequential":
                with sequential():
                    report = pipeline.index([args.papers])
            else:
                report = pipeline.index([args.papers])
            runs[order].append(report.seconds)
            print(order, report.indexed, report.chunks_added, report.seconds, flush=True)
    best = {order: min(times) for order, times in runs.items()}
    result = {"embedder": settings.embedder.model, "cpus": os.cpu_count(),
              "files": report.indexed, "chunks": report.chunks_added, "seconds": runs,
              "best": best, "speedup": round(best["sequential"] / best["overlapped"], 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(result["best"], "speedup", result["speedup"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
