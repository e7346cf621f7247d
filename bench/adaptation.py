"""Does adapting the reranker to a knowledge base pay? For each question set (papers, docs) and
the reranker `rag train reranker --kb NAME` trained for its knowledge base: the share of
answerable questions whose right document is at rank 1 (and in the top 4, about what a
750-token prompt holds) of hybrid search, without and with that reranker over the top 20
candidates. With ``--answers``, `rag eval answers` on the set both ways, from a running
`rag serve-llm` (fact found, right document cited, refusal F1).

The knowledge bases and rerankers come from RAG_HOME; train them first, for example
``rag train reranker --kb docs --base bundled:verifier-minilm --epochs 3``. Writes
bench/results/adaptation/ranks.json (and the answer runs beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, right_doc_ranks, shares

ROOT = Path(__file__).resolve().parents[1]
TOP_N = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reranker", action="append", default=[], metavar="KB=FOLDER",
                        help="a question set's knowledge base and its adapted reranker "
                             "(repeat: papers=..., docs=...)")
    parser.add_argument("--answers", action="store_true",
                        help="also `rag eval answers` both ways (needs `rag serve-llm`)")
    parser.add_argument("--out", type=Path, default=RESULTS / "adaptation")
    args = parser.parse_args()
    if not args.reranker:
        parser.error("give --reranker KB=FOLDER at least once")
    from rag.core.config import load_settings
    from rag.core.hardware import cpu_name
    from rag.service.pipeline import Pipeline

    result: dict[str, object] = {"machine": cpu_name(), "date": time.strftime("%Y-%m-%d"),
                                 "top_n": TOP_N, "sets": {}}
    for item in args.reranker:
        kb, _, folder = item.partition("=")
        questions = ROOT / "eval" / "questions" / f"{kb}.jsonl"
        env = {"RAG_RERANKER__MODEL": folder, "RAG_RERANKER__TOP_N": str(TOP_N)}
        os.environ.update(env)
        pipeline = Pipeline(load_settings(), kb)
        entry: dict[str, object] = {"reranker": folder}
        for name, rerank in (("retrieval", False), ("reranked", True)):
            entry[name] = shares(right_doc_ranks(pipeline, questions, rerank=rerank), 4)
            print(kb, name, entry[name], flush=True)
        if args.answers:
            for name, enabled in (("retrieval", "false"), ("reranked", "true")):
                run = args.out / f"{kb}-{name}"
                subprocess.run([sys.executable, "-m", "rag.cli.main", "eval", "answers",
                                "--dataset", str(questions), "--kb", kb, "--output", str(run)],
                               env={**os.environ, "RAG_GENERATOR__MODE": "served",
                                    "RAG_RERANKER__ENABLED": enabled}, check=True,
                               stdout=subprocess.DEVNULL)
        result["sets"][kb] = entry  # type: ignore[index]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranks.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'ranks.json'}")


if __name__ == "__main__":
    main()
