"""Answer latency and quality per prompt config on a question set, from a warm LLM server.

For each config (passages by count or by a token budget), every question of the
set is asked one at a time, streamed, as the chat app asks it: seconds until the first token
and until the answer is complete, prompt tokens, and the answer's scores (fact found, right
document cited, refusal right; eval/answers.py). vLLM's prefix cache is emptied between
configs (the server runs with VLLM_SERVER_DEV_MODE for its /reset_prefix_cache route), then
warmed with one unrelated question so the shared system prompt is cached as on any warm
server. Then a batch of 16 questions through ``ask_many`` on the server, and transformers
``generate`` on the same 16 prompts (batch 16).

Default: the papers question set (eval/questions/papers.jsonl) over ../shared/corpora/papers.
Writes bench/results/answer_latency.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path

import httpx
from common import home_unless_set

from eval.answers import load_questions, rate, score
from rag.core.config import Settings, load_settings
from rag.core.hardware import cpu_name
from rag.generation.engines import engine_dtype, server_healthy
from rag.generation.server import ManagedServer, free_port
from rag.service.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_name("results") / "answer_latency.json"
CONFIGS: dict[str, dict[str, int]] = {
    "k10": {"k": 10, "passage_tokens": 0},  # the default where the LLM runs in bf16
    "k5": {"k": 5, "passage_tokens": 0},
    "k3": {"k": 3, "passage_tokens": 0},
    "budget500": {"k": 10, "passage_tokens": 500},
    "budget750": {"k": 10, "passage_tokens": 750},  # the default where it runs in fp32
    "budget1200": {"k": 10, "passage_tokens": 1200},
}
WARM_UP = "What is this collection of documents about?"


def configured(base: Settings, overrides: dict[str, int]) -> Settings:
    return base.model_copy(update={"retrieval": base.retrieval.model_copy(update=overrides)})


def percentile(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 2)


def empty_cache(url: str) -> None:
    """vLLM's prefix cache emptied, so the next prompts are computed in full."""
    httpx.post(url.removesuffix("/v1") + "/reset_prefix_cache", timeout=30).raise_for_status()


def run_config(pipeline: Pipeline, questions: list, url: str) -> dict[str, object]:  # type: ignore[type-arg]
    empty_cache(url)
    pipeline.ask(WARM_UP, on_token=lambda _: None)
    rows = []
    for q in questions:
        first: list[float] = []

        def on_token(_: str, first: list[float] = first) -> None:
            if not first:
                first.append(time.perf_counter())

        started = time.perf_counter()
        answer = pipeline.ask(q.question, on_token=on_token)
        row = score(answer, q)
        row["seconds"] = round(time.perf_counter() - started, 2)
        # as the user waits for it, retrieval and the gate included (the answer's own timing
        # counts from the generation's start)
        row["first_token_s"] = round(first[0] - started, 2) if first else row["seconds"]
        rows.append(row)
        print(f"  {row['seconds']:6.1f} s  first {row['first_token_s']:4.1f} s  "
              f"{row['prompt_tokens']:5} tok  "
              f"fact={row['fact_found']} doc={row['right_doc_cited']} "
              f"refused={row['refused']}  {q.question[:60]}", flush=True)
    seconds = [float(r["seconds"]) for r in rows]  # type: ignore[arg-type]
    return {
        "median_s": round(statistics.median(seconds), 2), "p95_s": percentile(seconds, 95),
        "max_s": max(seconds),
        "first_token_median_s": round(statistics.median(float(r["first_token_s"]) for r in rows), 2),  # type: ignore[arg-type]
        "prompt_tokens_mean": round(statistics.mean(int(r["prompt_tokens"]) for r in rows)),  # type: ignore[arg-type]
        "fact_found": rate(rows, "fact_found"), "right_doc_cited": rate(rows, "right_doc_cited"),
        "refusal_correct": rate(rows, "refusal_correct"),
        "refused_answerable": sum(1 for r in rows if r["refused"] and not r["unanswerable"]),
        "rows": rows,
    }


def transformers_batch(path: str, prompts: list[str], max_tokens: int, dtype: str) -> dict[str, float]:
    """Greedy HF generate of the whole left-padded batch, end to end."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        started = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        seconds = time.perf_counter() - started
    tokens = int((out[:, enc["input_ids"].shape[1]:] != tok.pad_token_id).sum())
    del model
    gc.collect()
    return {"seconds": round(seconds, 1), "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/papers")
    parser.add_argument("--questions", type=Path, default=ROOT / "eval/questions/papers.jsonl")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS),
                        help="configs to (re)measure; others' results in --out are kept")
    parser.add_argument("--batch-config", default="", help="config of the batch-16 run "
                        "(default: the settings as configured)")
    parser.add_argument("--batch-tokens", type=int, default=64,
                        help="answer tokens in the vLLM vs transformers comparison")
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--no-batch", action="store_true", help="only the one-at-a-time configs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    home_unless_set()
    questions = load_questions(args.questions)
    port = free_port()
    base = load_settings()
    base = base.model_copy(update={"generator": base.generator.model_copy(update={
        "mode": "served", "server_url": f"http://127.0.0.1:{port}/v1", "timeout_s": 900.0})})
    pipeline = Pipeline(base, "bench-answers")
    report = pipeline.index([args.corpus])
    print(f"indexed {report.indexed} files, {report.chunks_added} chunks", flush=True)
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # /reset_prefix_cache between configs
    server = ManagedServer(base, port)
    server.start()
    try:
        started = time.perf_counter()
        while not server_healthy(base.generator.server_url):
            if server.exited() is not None or time.perf_counter() - started > 600:
                raise SystemExit(f"LLM server did not start; see {server.log}")
            time.sleep(2)
        old = json.loads(args.out.read_text()) if args.out.exists() else {}
        result: dict[str, object] = {
            "cpus": os.cpu_count(), "model": base.generator.model,
            "dtype": engine_dtype(base.generator.dtype), "questions": len(questions),
            "speculative": base.generator.speculative, "cpu": cpu_name(),
            "corpus": args.corpus.name, "server_start_s": round(time.perf_counter() - started, 1),
            "configs": old.get("configs", {}),
        }
        for name in args.configs:
            print(f"{name}: {CONFIGS[name]}", flush=True)
            p = Pipeline(configured(base, CONFIGS[name]), "bench-answers",
                         embedder=pipeline.embedder)
            summary = run_config(p, questions, base.generator.server_url)
            result["configs"][name] = {"settings": CONFIGS[name], **summary}  # type: ignore[index]
            print({k: v for k, v in summary.items() if k != "rows"}, flush=True)
            args.out.parent.mkdir(exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        if args.no_batch:
            return
        batch_settings = configured(base, CONFIGS.get(args.batch_config, {}))
        p = Pipeline(batch_settings, "bench-answers", embedder=pipeline.embedder)
        empty_cache(base.generator.server_url)
        asked = [q.question for q in questions if not q.unanswerable][:16]
        started = time.perf_counter()
        answers = p.ask_many(asked)
        result["batch16_ask_many_s"] = round(time.perf_counter() - started, 1)
        result["batch16_settings"] = batch_settings.retrieval.model_dump()
        prompts = [p.answerer.prompt(q, p.search(q).hits).text for q in asked]
        result["batch16_prompt_tokens_mean"] = round(statistics.mean(
            a.timings["prompt_tokens"] for a in answers))
        empty_cache(base.generator.server_url)
        gens = p.generator.generate(prompts, args.batch_tokens)
        result["batch16_vllm"] = {"seconds": round(max(g.seconds for g in gens), 1),
                                  "tokens": sum(g.completion_tokens for g in gens)}
        print("batch 16:", result["batch16_ask_many_s"], "s ask_many;",
              result["batch16_vllm"], flush=True)
    finally:
        server.stop()
    if not args.no_transformers:
        from rag.generation.models import resolve_generator

        path = resolve_generator(base.generator.model, base.home)
        hf = transformers_batch(path, prompts, args.batch_tokens, engine_dtype(base.generator.dtype))
        result["batch16_transformers"] = hf
        result["batch16_vllm_speedup"] = round(hf["seconds"] / result["batch16_vllm"]["seconds"], 2)  # type: ignore[index]
        print("transformers batch 16:", hf, flush=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
