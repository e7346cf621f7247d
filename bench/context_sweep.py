"""Prompt processing and decoding speed against prompt length, per dtype, for the embedded vLLM
engine with the bundled model: every prompt is fresh random text (no prefix-cache hits).

TTFT is a 1-token generate of fresh prompts; decode tok/s is tokens / time of an N-token generate
of the same prompts right after (their prefill is then in the prefix cache, so the time is
decoding at that context length). One engine per dtype, each in its own process.
Writes bench/results/context_sweep.json and a plot beside it (context_sweep.svg);
``--plot-only`` redraws the plot from the JSON.
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


def child(dtype: str, lengths: list[int], batches: list[int], tokens: int) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if (os.cpu_count() or 1) <= 4:
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from rag.config import load_settings
    from rag.models import resolve_generator

    settings = load_settings()
    path = resolve_generator(settings.generator.model, settings.home)
    llm = LLM(model=path, max_model_len=4096, dtype=dtype, enforce_eager=True, seed=0,
              disable_log_stats=True)
    tok = llm.get_tokenizer()
    rng = random.Random(0)

    def fresh(n: int) -> TokensPrompt:
        text = " ".join(rng.choice(WORDS) for _ in range(n * 2))
        return TokensPrompt(prompt_token_ids=tok(text, add_special_tokens=False)["input_ids"][:n])

    llm.generate([fresh(64)], SamplingParams(max_tokens=2), use_tqdm=False)  # warm up
    for n in lengths:
        for batch in batches:
            prompts = [fresh(n) for _ in range(batch)]
            t = time.perf_counter()
            llm.generate(prompts, SamplingParams(max_tokens=1), use_tqdm=False)
            ttft = time.perf_counter() - t
            params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
            t = time.perf_counter()
            llm.generate(prompts, params, use_tqdm=False)
            decode = time.perf_counter() - t
            row = {"dtype": dtype, "prompt_tokens": n, "batch": batch,
                   "ttft_s": round(ttft, 2), "decode_s": round(decode, 2),
                   "prefill_tok_s": round(n * batch / ttft, 1),
                   "decode_tok_s": round(batch * tokens / decode, 2)}
            print("ROW " + json.dumps(row), flush=True)


def plot(result: dict, path: Path) -> None:  # type: ignore[type-arg]
    """First-token time and decoding speed against prompt length, one line per dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for dtype in sorted({r["dtype"] for r in result["rows"]}):
        rows = sorted((r for r in result["rows"] if r["dtype"] == dtype and r["batch"] == 1),
                      key=lambda r: r["prompt_tokens"])
        x = [r["prompt_tokens"] for r in rows]
        left.plot(x, [r["ttft_s"] for r in rows], marker="o", label=dtype)
        right.plot(x, [r["decode_tok_s"] for r in rows], marker="o", label=dtype)
    left.set(xlabel="prompt tokens", ylabel="time to first token (s)", title="Prompt")
    right.set(xlabel="prompt tokens", ylabel="tokens/s", title="Decoding", ylim=(0, None))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Qwen2.5-Coder-0.5B, embedded vLLM, {result['cpus']} cores ({result['cpu']})")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 3072, 3584])
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".svg"))
        return
    if args.child:
        child(args.child, args.lengths, args.batches, args.tokens)
        return
    import torch

    rows = []
    for dtype in args.dtypes:
        cmd = [sys.executable, __file__, "--child", dtype, "--tokens", str(args.tokens),
               "--lengths", *map(str, args.lengths), "--batches", *map(str, args.batches)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        for line in out.stdout.splitlines():
            if line.startswith("ROW "):
                rows.append(json.loads(line[4:]))
                print(rows[-1], flush=True)
    result = {"cpu": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count(),
              "answer_tokens": args.tokens, "rows": rows}
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".svg"))
    print(f"wrote {args.out} and {args.out.with_suffix('.svg')}")


if __name__ == "__main__":
    main()
