"""Answer quality of the default configuration on three question sets, with `rag eval answers`.

SciFact dev (claims as questions), the papers question set over ../shared/corpora/papers and the
docs question set over this repository's docs/. Each run folder is resumable; their summaries
(metrics with intervals) are collected into bench/results/answer_quality.json under
``TAG/SET`` (default tag: the generator's name), so two models' results sit side by side. A
running `rag serve-llm` of the same model is used, else each set starts the embedded engine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = Path(__file__).with_name("results") / "answer_quality.json"
RAG = [sys.executable, "-m", "rag.cli.main"]
SETS = {
    "scifact-dev": (["--dataset", str(SHARED / "datasets" / "scifact"), "--split", "dev"], None),
    "papers": (["--dataset", str(ROOT / "eval" / "questions" / "papers.jsonl"), "--kb", "papers"],
               SHARED / "corpora" / "papers"),
    "docs": (["--dataset", str(ROOT / "eval" / "questions" / "docs.jsonl"), "--kb", "docs"],
             ROOT / "docs"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, help="folder for the run folders "
                        "(default: $RAG_HOME/eval/bench); existing runs are resumed")
    parser.add_argument("--tag", help="results key (default: the configured generator)")
    parser.add_argument("--scifact-limit", type=int, help="only the first N SciFact claims")
    args = parser.parse_args()
    from rag.core.config import load_settings

    tag = args.tag or load_settings().generator.model.removeprefix("bundled:")
    home = Path(os.environ.get("RAG_HOME", "~/.rag")).expanduser()
    runs = (args.runs or home / "eval" / "bench") / tag
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for name, (options, corpus) in SETS.items():
        if name.startswith("scifact") and args.scifact_limit:
            options = [*options, "--limit", str(args.scifact_limit)]
        if corpus is not None:
            subprocess.run([*RAG, "index", str(corpus), "--kb", options[-1]], check=True)
        folder = runs / name
        subprocess.run([*RAG, "eval", "answers", *options, "--output", str(folder)], check=True)
        summary = json.loads((folder / "summary.json").read_text())
        results[f"{tag}/{name}"] = {k: summary[k] for k in ("dataset", "kb", "questions", "answered",
                                                  "failed", "config", "metrics")}
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
