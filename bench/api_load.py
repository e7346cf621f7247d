"""Load on the HTTP API: 1, 4 and 16 concurrent clients asking the papers questions of a warm
`rag serve` through the official openai client.

Indexes the corpus into a throwaway RAG_HOME, starts `rag serve` (which starts its own vLLM
server, as a user's would), waits until the LLM answers, warms it with one question, then for
each client count asks the same questions (the first --questions answerable ones), spread over
that many threads. vLLM's prefix cache is emptied before each level (the server runs with
VLLM_SERVER_DEV_MODE for its /reset_prefix_cache route) and warmed with one unrelated question,
so no level reuses the prompts of the one before. Per level: wall time, throughput relative to
one client, p50/p95 latency, errors (any non-200, 429 included), and the peak memory of the API
process and of its LLM server. Writes bench/results/api_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from common import throwaway_folder

from eval.answers import load_questions
from rag.core.hardware import cpu_name, native_bf16_cpu
from rag.generation.server import free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_name("results") / "api_load.json"
WARM_UP = "What is this collection of documents about?"


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


class Memory:
    """Peak RSS of a process (the API) and, apart, of all its descendants (the LLM server)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.api = self.llm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.api = max(self.api, self.proc.memory_info().rss)
                self.llm = max(self.llm, sum(c.memory_info().rss
                                             for c in self.proc.children(recursive=True)))
            except psutil.Error:
                pass

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_level(url: str, questions: list[str], clients: int, pid: int) -> dict[str, object]:
    from openai import OpenAI

    todo: queue.Queue[str] = queue.Queue()
    for q in questions:
        todo.put(q)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        api = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=1800)
        while True:
            try:
                question = todo.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            try:
                answer = api.chat.completions.create(
                    model="rag:papers", messages=[{"role": "user", "content": question}])
                assert answer.choices[0].message.content
                with lock:
                    latencies.append(time.perf_counter() - started)
            except Exception as exc:  # counted, the level goes on
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    with Memory(pid) as memory:
        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    return {"clients": clients, "questions": len(questions), "wall_s": round(wall, 1),
            "answers_per_min": round(60 * len(latencies) / wall, 2),
            "p50_s": percentile(latencies, 50) if latencies else None,
            "p95_s": percentile(latencies, 95) if latencies else None,
            "errors": len(errors), "error_samples": errors[:3],
            "peak_api_rss_mb": round(memory.api / 2**20), "peak_llm_rss_mb": round(memory.llm / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/papers")
    parser.add_argument("--questions-file", type=Path, default=ROOT / "eval/questions/papers.jsonl")
    parser.add_argument("--questions", type=int, default=16, help="asked at each level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    home = throwaway_folder("rag-bench-api-")
    env = dict(os.environ, RAG_HOME=str(home), VLLM_SERVER_DEV_MODE="1")
    rag = [sys.executable, "-m", "rag.cli.main"]
    subprocess.run([*rag, "index", str(args.corpus), "--kb", "papers"], env=env, check=True)
    asked = [q.question for q in load_questions(args.questions_file)
             if not q.unanswerable][:args.questions]
    port = free_port()
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen([*rag, "serve", "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).json().get("llm_ready"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if server.poll() is not None or time.perf_counter() - started > 900:
                raise SystemExit(f"rag serve did not get ready; see {home / 'serve.log'}")
            time.sleep(2)
        ready_s = round(time.perf_counter() - started, 1)
        print(f"rag serve ready in {ready_s} s", flush=True)
        state = json.loads((home / "run" / f"llm-api-{port}.json").read_text())
        levels = []
        for clients in args.clients:
            httpx.post(state["url"].removesuffix("/v1") + "/reset_prefix_cache",
                       timeout=30).raise_for_status()
            run_level(url, [WARM_UP], 1, server.pid)
            level = run_level(url, asked, clients, server.pid)
            levels.append(level)
            print(level, flush=True)
        base = levels[0]["answers_per_min"] or 1.0
        for level in levels:
            level["throughput_vs_1"] = round(float(level["answers_per_min"]) / float(base), 2)  # type: ignore[arg-type]
        settings = json.loads(subprocess.run([*rag, "config"], env=env, check=True,
                                             capture_output=True, text=True).stdout)
        result = {"cpu": cpu_name(), "cpus": os.cpu_count(), "native_bf16": native_bf16_cpu(),
                  "ready_s": ready_s,
                  "generator": settings["generator"]["model"],
                  "api_workers": settings["api"]["workers"], "corpus": args.corpus.name,
                  "levels": levels}
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    main()
