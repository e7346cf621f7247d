"""vLLM embedded vs plain transformers generate on the same model and prompts (batch 1 and 16):
tokens/s and time to first token; then end-to-end `ask` latency split into retrieve / rerank /
generate. Writes bench/results/generation.json. Run in one process so ratios share the machine."""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path

from common import home_unless_set

from rag.core.config import load_settings
from rag.service.pipeline import Pipeline

OUT = Path(__file__).with_name("results") / "generation.json"
DOCS = Path(__file__).resolve().parents[1] / "docs"
QUESTIONS = [
    "How do I install rag?", "What formats can rag index?", "How is text chunked?",
    "What happens when an indexing job is killed?", "How do I evaluate retrieval?",
    "What does hybrid retrieval do?", "How do I use a reranker?", "Where does rag keep its state?",
    "How are bad files reported?", "What do the E5 prefixes look like?",
    "How do I change the embedding model?", "What is the default retrieval mode?",
    "How do I start the vLLM server?", "What does rag models show?",
    "How are citations checked?", "What does --json print for rag index?",
]


def transformers_run(path: str, prompts: list[str], max_tokens: int) -> dict[str, float]:
    """Greedy HF generate, left-padded batch; TTFT = time of a 1-token generate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        t = time.perf_counter()
        model.generate(**enc, max_new_tokens=1, do_sample=False)
        ttft = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        elapsed = time.perf_counter() - t
    new = out[:, enc["input_ids"].shape[1]:]
    tokens = int((new != tok.pad_token_id).sum())
    del model
    gc.collect()
    return {"tokens": tokens, "seconds": round(elapsed, 2), "tokens_per_s": round(tokens / elapsed, 1),
            "ttft_s": round(ttft, 3)}


def vllm_run(pipeline: Pipeline, prompts: list[str], max_tokens: int) -> dict[str, float]:
    """TTFT like for transformers: a 1-token generate of the whole batch. vLLM's automatic
    prefix caching is on (its default), so the shared system prompt is computed once."""
    gen = pipeline.generator
    t = time.perf_counter()
    gen.generate(prompts, 1)
    ttft = time.perf_counter() - t
    outs = gen.generate(prompts, max_tokens)
    tokens = sum(o.completion_tokens for o in outs)
    seconds = outs[0].seconds
    return {"tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "ttft_s": round(ttft, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    home_unless_set()
    pipeline = Pipeline(load_settings(), "docs")
    pipeline.index([DOCS])
    prompts = [pipeline.answerer.prompt(q, pipeline.search(q, k=3).hits).text for q in QUESTIONS]
    path = pipeline.generator.model_path  # type: ignore[attr-defined]
    results: dict[str, object] = {"model": pipeline.generator.name, "max_tokens": args.max_tokens,
                                  "cpus": os.cpu_count(),
                                  "prompt_tokens_mean": round(sum(
                                      pipeline.generator.count_tokens(p) for p in prompts) / 16)}
    for batch in (1, 16):
        chosen = prompts[:batch] if batch > 1 else prompts[-1:]
        results[f"transformers_batch{batch}"] = transformers_run(path, chosen, args.max_tokens)
        print(batch, "transformers", results[f"transformers_batch{batch}"], flush=True)
    pipeline.generator.llm  # type: ignore[attr-defined]  # noqa: B018 - start before timing
    for batch in (1, 16):  # batch 1 uses the last prompt: 15 of batch 16 are then unseen
        chosen = prompts[:batch] if batch > 1 else prompts[-1:]
        results[f"vllm_batch{batch}"] = vllm_run(pipeline, chosen, args.max_tokens)
        print(batch, "vllm", results[f"vllm_batch{batch}"], flush=True)
    split = []
    for q in QUESTIONS[:5]:
        a = pipeline.ask(q, k=3, on_token=lambda _: None)
        split.append({k: a.timings[k] for k in ("retrieve_s", "rerank_s", "generate_s",
                                                "first_token_s", "tokens_per_s")})
    results["ask_latency"] = split
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
