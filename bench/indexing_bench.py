"""Indexing cost against KB size, the pause a removal causes to searches, and memory on a
one-line file.

- scaling: 1k / 10k / 100k chunks with a zero-cost fake embedder (384-d): seconds per 1k chunks
  must stay flat (linear work); also a re-run with nothing changed and a one-file update.
- pause: searches run in a loop while one document is removed from the 100k-chunk KB; the
  slowest search during the removal against the usual latency.
- one_line: a 16 MB file with no line break, chunked with the bundled MiniLM tokenizer (in a
  child process, to read its own peak memory).

Writes bench/results/indexing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rag.core.config import load_settings
from rag.service.pipeline import Pipeline
from tests.fakes import HashEmbedder

OUT = Path(__file__).with_name("results") / "indexing.json"
CHUNKS_PER_FILE = 100


def make_folder(root: Path, chunks: int) -> Path:
    """Files of 100 sentences; each sentence (35 words) fills one chunk of the fake embedder."""
    root.mkdir(parents=True)
    for f in range(chunks // CHUNKS_PER_FILE):
        lines = [" ".join([f"file{f} sentence{s}"] + [f"w{(f * 7 + s * 13 + k) % 5000}"
                                                      for k in range(33)]) + "."
                 for s in range(CHUNKS_PER_FILE)]
        (root / f"doc{f:05}.txt").write_text("\n\n".join(lines))
    return root


def scaling(sizes: list[int]) -> list[dict[str, float]]:
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["RAG_HOME"] = tmp + "/home"
            folder = make_folder(Path(tmp) / "docs", n)
            pipeline = Pipeline(load_settings(), "bench", embedder=HashEmbedder(384, 40))
            t0 = time.perf_counter()
            report = pipeline.index([folder])
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            pipeline.index([folder])
            rerun = time.perf_counter() - t0
            (folder / "doc00000.txt").write_text("A changed file. " * 20)
            t0 = time.perf_counter()
            pipeline.index([folder])
            update = time.perf_counter() - t0
            row = {"chunks": report.chunks_added, "index_s": round(first, 2),
                   "s_per_1k_chunks": round(first / report.chunks_added * 1000, 3),
                   "rerun_unchanged_s": round(rerun, 2), "one_file_update_s": round(update, 2)}
            print(row, flush=True)
            out.append(row)
            if n == max(sizes):
                out[-1]["pause"] = pause(pipeline, folder)  # type: ignore[assignment]
    return out


def pause(pipeline: Pipeline, folder: Path) -> dict[str, float]:
    """Search latency while a removal rebuilds and publishes the 100k-chunk index."""
    pipeline.search("sentence5 w17", mode="hybrid")  # warm
    latencies: list[tuple[float, float]] = []
    stop = threading.Event()

    def searcher() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            pipeline.search(f"sentence{len(latencies) % 100} w{len(latencies) % 5000}",
                            mode="hybrid")
            latencies.append((t0, time.perf_counter() - t0))

    thread = threading.Thread(target=searcher)
    thread.start()
    time.sleep(3)
    start = time.perf_counter()
    pipeline.remove([str(folder / "doc00001.txt")])
    end = time.perf_counter()
    time.sleep(3)
    stop.set()
    thread.join()
    before = [d for t, d in latencies if t < start]
    during = [d for t, d in latencies if start <= t <= end] or [0.0]
    after = [d for t, d in latencies if t > end]
    return {"remove_and_publish_s": round(end - start, 2),
            "search_p50_before_ms": round(statistics.median(before) * 1000, 1),
            "search_max_before_ms": round(max(before) * 1000, 1),
            "search_max_during_ms": round(max(during) * 1000, 1),
            "searches_during": len(during),
            "search_max_after_ms": round(max(after) * 1000, 1) if after else None}


def one_line_child(mb: int) -> None:
    """Runs in a child: index one file of ``mb`` MB without a line break, real tokenizer."""
    from rag.core.config import EmbedderSettings
    from rag.embedding.embedder import SentenceTransformerEmbedder

    class TokenizerOnly(HashEmbedder):
        """The bundled MiniLM's tokenizer and limits; fake vectors (memory is the question)."""

        def __init__(self) -> None:
            real = SentenceTransformerEmbedder(EmbedderSettings(device="cpu"))
            super().__init__(real.dim, real.max_tokens)
            self.tokenizer, self.count_tokens = real.tokenizer, real.count_tokens  # type: ignore

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RAG_HOME"] = tmp + "/home"
        path = Path(tmp) / "one-line.txt"
        words = " ".join(f"word{i % 997}" for i in range(mb * 2**20 // 8))
        path.write_text(words[: mb * 2**20])
        del words
        embedder = TokenizerOnly()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        os.environ["RAG_INGEST__PARSE_TIMEOUT_S"] = "600"
        t0 = time.perf_counter()
        report = Pipeline(load_settings(), "one", embedder=embedder).index([path])
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"file_mb": mb, "chunks": report.chunks_added, "seconds": round(seconds, 1),
                          "rss_before_mb": round(base), "peak_rss_mb": round(peak),
                          "peak_growth_mb": round(peak - base), "failed": len(report.failed)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--one-line-mb", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        one_line_child(args.child)
        return
    results: dict[str, object] = {"cpus": os.cpu_count(), "scaling": scaling(args.sizes)}
    child = subprocess.run([sys.executable, __file__, "--child", str(args.one_line_mb)],
                           capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    results["one_line"] = json.loads(child.stdout.strip().splitlines()[-1])
    print(results["one_line"])
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
