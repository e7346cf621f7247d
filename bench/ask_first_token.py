"""Time to the first answer token of `rag ask` while `rag serve-llm` runs: the command as a user
types it, a new process each time. Measured from the command's start to the first byte of the
answer on its stdout (Python start, imports, loading the KB and the embedder, retrieval, the
prompt's prefill on the server), and the server's own first-token time that `rag ask` reports.
Each question is asked twice in a row with others between (the second time the KB and the
models are in the page cache, as for any second `rag ask`), first with the ask worker off
(every command loads retrieval itself), then on (the first command starts the worker, later
ones go through it).

Needs `rag serve-llm` running with the configured model and the KB (default: ``docs``, from this
repository's docs/). Writes bench/results/ask_first_token.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).with_name("results") / "ask_first_token.json"
QUESTIONS = [
    "What happens when an indexing job is killed?",
    "How does rag check citations?",
    "Which file types can rag index?",
    "How do I run the chat app on another port?",
]


def ask(question: str, kb: str, worker: bool) -> dict[str, object]:
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not worker:
        env["RAG_GENERATOR__ASK_WORKER_IDLE_S"] = "0"
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "ask", question, "--kb", kb],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_byte_s = time.perf_counter() - started
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"rag ask failed: {err.decode()[-500:]}")
    text = (first + out).decode()
    # the footer line may wrap anywhere between its words
    reported = re.search(r"first\s+token\s+([\d.]+)s", text)
    prompt = re.search(r"prompt\s+(\d+)\s+tokens", text)
    gate = re.search(r"gate\s+([\d.]+)s", text)
    return {"question": question, "first_byte_s": round(first_byte_s, 2),
            "server_first_token_s": float(reported.group(1)) if reported else None,
            "prompt_tokens": int(prompt.group(1)) if prompt else None,
            "gate_s": float(gate.group(1)) if gate else None,
            "total_s": round(time.perf_counter() - started, 2),
            "used_server": "using the LLM server" in err.decode(),
            "via_worker": "background ask worker" in err.decode()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kb", default="docs")
    args = parser.parse_args()
    result: dict[str, object] = {"cpus": os.cpu_count(), "kb": args.kb}
    for worker in (False, True):
        rows = [ask(q, args.kb, worker) | {"round": r} for r in (1, 2) for q in QUESTIONS]
        for row in rows:
            print(row, flush=True)
        second = [r for r in rows if r["round"] == 2]
        result["with_worker" if worker else "without_worker"] = {
            "rows": rows,
            "second_first_byte_median_s": statistics.median(r["first_byte_s"] for r in second),
            "second_server_first_token_median_s": statistics.median(
                r["server_first_token_s"] for r in second
                if r["server_first_token_s"] is not None),
            "all_used_server": all(r["used_server"] for r in rows),
            "second_round_via_worker": sum(bool(r["via_worker"]) for r in second),
        }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
