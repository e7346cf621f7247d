"""Training and inference speed of the claim verifier's recipe in float32 and under bfloat16
autocast, in one run on this machine: the same SciFact train examples, the same steps, each
precision from a fresh MiniLM; and the shipped verifier's dev AUCs read in each dtype.

Writes bench/results/training_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import SHARED, scifact_args, throwaway_folder

from eval.scifact import SciFact
from eval.training.cross_encoders import Recipe, train
from eval.training.encoders import resolve_base
from eval.training.evaluation import verifier_metrics
from eval.training.verifier_data import verifier_examples
from rag.bundled import resolve
from rag.core.hardware import cpu_name, native_bf16_cpu
from rag.grounding.support import sentences_of
from rag.grounding.verifier import Verifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=320, help="training examples per run")
    args = scifact_args(None, "training_speed.json", parser)
    folder = args.scifact if args.scifact.exists() else SHARED / "datasets" / "scifact"
    train_data, dev = SciFact.load(folder, "train"), SciFact.load(folder, "dev")
    examples = verifier_examples(train_data)[:args.examples]
    columns = {"evidence": [e.evidence for e in examples], "claim": [e.claim for e in examples],
               "label": [e.label for e in examples]}
    home = Path(os.environ["RAG_HOME"])
    base = resolve_base("bundled:all-MiniLM-L6-v2", home)
    result: dict[str, object] = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, native bf16: {native_bf16_cpu()}",
        "date": time.strftime("%Y-%m-%d"), "examples": len(examples), "max_length": 160,
        "training": {}, "verifier_dev": {}}
    for name, bf16 in (("float32", False), ("bf16 autocast", True)):
        recipe = Recipe(base, 3, 1, 5e-5, 16, 160)
        trained = train(recipe, columns, throwaway_folder("rag-train-"), bf16=bf16)
        result["training"][name] = {  # type: ignore[index]
            "seconds": trained.seconds,
            "examples_per_s": round(len(examples) / trained.seconds, 1)}
        print(name, result["training"][name], flush=True)  # type: ignore[index]
    shipped = resolve("bundled:verifier-minilm", home)
    for dtype in ("float32", "bfloat16"):
        model = Verifier(shipped, dtype=dtype)
        started = time.perf_counter()
        metrics = verifier_metrics(model.probabilities, dev, sentences_of)
        result["verifier_dev"][dtype] = {  # type: ignore[index]
            **metrics, "seconds": round(time.perf_counter() - started, 1)}
        print(dtype, result["verifier_dev"][dtype], flush=True)  # type: ignore[index]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
