"""Prompt processing and decoding speed against prompt length, per engine and dtype, with the
bundled model: every prompt is fresh random text (no prefix-cache hits).

Engines: ``embedded`` (vLLM in process), ``served`` (``rag serve-llm``, requests over HTTP, a
batch as concurrent requests) and ``transformers`` (``generate``, the baseline). TTFT is a
1-token generate of fresh prompts. For vLLM, decode tok/s is tokens / time of an N-token
generate of the same prompts right after (their prefill is then in the prefix cache, so the
time is decoding at that context length); transformers keeps no cache between calls, so its
decode time is the N-token generate minus the TTFT. Each engine and dtype runs in its own
process. Rows are merged into bench/results/context_sweep.json (a rerun of some engines keeps
the others' rows) and plotted beside it (context_sweep.svg); ``--plot-only`` redraws the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).with_name("results") / "context_sweep.json"
WORDS = ("the quick brown fox jumps over lazy dog river stone light paper music garden winter "
         "copper signal forest harbor pencil thunder marble violet canyon").split()


def fresh_prompts(tok, lengths: list[int], batches: list[int]):  # noqa: ANN001, ANN201
    """(n, batch, token-id lists) of random words, seeded: the same for every engine, whose
    tokenizer ``tok`` (a Hugging Face tokenizer) cuts them to exactly n tokens."""
    rng = random.Random(0)

    def fresh(n: int) -> list[int]:
        text = " ".join(rng.choice(WORDS) for _ in range(n * 2))
        return tok(text, add_special_tokens=False)["input_ids"][:n]

    return [(n, b, [fresh(n) for _ in range(b)]) for n in lengths for b in batches]


def row(engine: str, dtype: str, n: int, batch: int, ttft: float, decode: float,
        tokens: int) -> None:
    print("ROW " + json.dumps({
        "engine": engine, "dtype": dtype, "prompt_tokens": n, "batch": batch,
        "ttft_s": round(ttft, 2), "decode_s": round(decode, 2),
        "prefill_tok_s": round(n * batch / ttft, 1), "decode_tok_s": round(batch * tokens / decode, 2),
    }), flush=True)


def timed(fn, *args, **kwargs) -> float:  # noqa: ANN001, ANN002, ANN003
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def model_path() -> str:
    from rag.core.config import load_settings
    from rag.generation.models import resolve_generator

    settings = load_settings()
    return resolve_generator(settings.generator.model, settings.home)


def embedded(dtype: str, lengths: list[int], batches: list[int], tokens: int) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if (os.cpu_count() or 1) <= 4:
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=model_path(), max_model_len=4096, dtype=dtype, enforce_eager=True, seed=0,
              disable_log_stats=True)
    tok = llm.get_tokenizer()
    llm.generate([TokensPrompt(prompt_token_ids=tok("warm up")["input_ids"])],
                 SamplingParams(max_tokens=2), use_tqdm=False)
    one = SamplingParams(max_tokens=1)
    many = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    for n, batch, ids in fresh_prompts(tok, lengths, batches):
        prompts = [TokensPrompt(prompt_token_ids=p) for p in ids]
        ttft = timed(llm.generate, prompts, one, use_tqdm=False)
        decode = timed(llm.generate, prompts, many, use_tqdm=False)
        row("embedded", dtype, n, batch, ttft, decode, tokens)


def served(dtype: str, lengths: list[int], batches: list[int], tokens: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from transformers import AutoTokenizer

    from rag.core.config import load_settings
    from rag.generation.engines import server_healthy
    from rag.generation.server import ManagedServer, free_port

    port = free_port()
    os.environ["RAG_GENERATOR__DTYPE"] = dtype
    server = ManagedServer(load_settings(), port)
    server.start()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while not server_healthy(url):
            if server.exited() is not None:
                raise SystemExit(f"LLM server did not start; see {server.log}")
            time.sleep(2)
        tok = AutoTokenizer.from_pretrained(model_path())
        client = httpx.Client(timeout=1800)

        def complete(ids: list[int], n: int) -> None:
            client.post(f"{url}/completions", json={
                "model": "rag-llm", "prompt": ids, "max_tokens": n, "temperature": 0,
                "ignore_eos": True}).raise_for_status()

        def together(prompts: list[list[int]], n: int) -> None:
            list(pool.map(complete, prompts, [n] * len(prompts)))

        complete(tok("warm up")["input_ids"], 2)
        with ThreadPoolExecutor(max(batches)) as pool:
            for n, batch, ids in fresh_prompts(tok, lengths, batches):
                ttft = timed(together, ids, 1)
                decode = timed(together, ids, tokens)
                row("served", dtype, n, batch, ttft, decode, tokens)
    finally:
        server.stop()


def transformers(dtype: str, lengths: list[int], batches: list[int], tokens: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    for n, batch, ids in fresh_prompts(tok, lengths, batches):
        enc = {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(batch, n, dtype=int)}
        with torch.inference_mode():
            ttft = timed(model.generate, **enc, max_new_tokens=1, do_sample=False)
            total = timed(model.generate, **enc, max_new_tokens=tokens, min_new_tokens=tokens,
                          do_sample=False)
        row("transformers", dtype, n, batch, ttft, total - ttft, tokens)


ENGINES = {"embedded": embedded, "served": served, "transformers": transformers}


def plot(result: dict, path: Path) -> None:  # type: ignore[type-arg]
    """First-token time and decoding speed against prompt length, one line per dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    lines = sorted({(r["engine"], r["dtype"], r["batch"]) for r in result["rows"]})
    for engine, dtype, batch in lines:
        rows = sorted((r for r in result["rows"]
                       if (r["engine"], r["dtype"], r["batch"]) == (engine, dtype, batch)),
                      key=lambda r: r["prompt_tokens"])
        x = [r["prompt_tokens"] for r in rows]
        label = f"{engine} {dtype} batch {batch}"
        style = {"marker": "o", "linestyle": "--" if engine == "transformers" else "-"}
        left.plot(x, [r["ttft_s"] / batch for r in rows], label=label, **style)
        right.plot(x, [r["decode_tok_s"] for r in rows], label=label, **style)
    left.set(xlabel="prompt tokens", ylabel="first-token time per prompt (s)", title="Prompt")
    right.set(xlabel="prompt tokens", ylabel="tokens/s (all prompts of the batch)",
              title="Decoding", ylim=(0, None))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle(f"Qwen2.5-Coder-0.5B, {result['cpus']} cores ({result['cpu']})")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 3072, 3584])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".svg"))
        return
    if args.child:
        engine, dtype = args.child
        ENGINES[engine](dtype, args.lengths, args.batches, args.tokens)
        return
    import torch

    old = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    rows = {(r.get("engine", "embedded"), r["dtype"], r["prompt_tokens"], r["batch"]):
            {"engine": "embedded", "answer_tokens": old.get("answer_tokens"), **r}
            for r in old["rows"]}
    for engine in args.engines:
        for dtype in args.dtypes:
            cmd = [sys.executable, __file__, "--child", engine, dtype, "--tokens", str(args.tokens),
                   "--lengths", *map(str, args.lengths), "--batches", *map(str, args.batches)]
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            for line in out.stdout.splitlines():
                if line.startswith("ROW "):
                    r = {**json.loads(line[4:]), "answer_tokens": args.tokens}
                    rows[(engine, dtype, r["prompt_tokens"], r["batch"])] = r
                    print(r, flush=True)
    result = {"cpu": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count(),
              "rows": sorted(rows.values(), key=lambda r: (
                  r["engine"], r["dtype"], r["batch"], r["prompt_tokens"]))}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".svg"))
    print(f"wrote {args.out} and {args.out.with_suffix('.svg')}")


if __name__ == "__main__":
    main()
