"""Fine-tuning a cross-encoder with sentence-transformers' CrossEncoderTrainer: a seed, a
progress bar, checkpoints each epoch (``resume`` picks up the last), CUDA when present, the word
embeddings frozen (so the shipped model can take them from the MiniLM package), and a held-out
evaluation after every epoch: the learning curve the model card shows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Evaluate = Callable[[Any], dict[str, float]]  # a CrossEncoder -> held-out metrics


@dataclass
class Recipe:
    """How a cross-encoder is trained (recorded in its card)."""

    base: str
    labels: int  # 1: a relevance score (binary cross-entropy); 3: supports/contradicts/neither
    epochs: float
    learning_rate: float
    batch_size: int = 16
    max_length: int = 256
    warmup: float = 0.1
    seed: int = 0
    # labels 1 only: "bce" scores each pair alone; "listwise" each query's positive against its
    # hard negatives together (a softmax over them): what made the reranker learn here
    loss: str = "bce"

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class Trained:
    folder: Path
    seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, metrics
    machine: str = ""


def bf16_autocast(device: str) -> bool:
    """Train under bfloat16 autocast where the hardware computes it natively: 1.9x the examples
    per second of float32 on a 2-core AVX512-BF16 CPU (bench/training_speed.py); the weights
    stay float32."""
    import torch

    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    from rag.core.hardware import native_bf16_cpu

    return native_bf16_cpu()


def machine(bf16: bool = False) -> str:
    import torch

    precision = ", bf16 autocast" if bf16 else ", float32"
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}{precision}"
    from rag.core.hardware import cpu_name

    return f"CPU: {cpu_name()}, {torch.get_num_threads()} threads{precision}"


def train(recipe: Recipe, columns: dict[str, Sequence[Any]], out: Path,
          evaluate: Evaluate | None = None, resume: bool = False,
          bf16: bool | None = None) -> Trained:
    """Train on ``columns`` (the pair's two texts, then "label"; listwise: query, positive,
    negative_1..n), writing checkpoints under ``out/checkpoints`` and the model to
    ``out/model``. A base with another number of labels (the verifier as a reranker's start)
    keeps its encoder and gets a new head. ``bf16``: autocast or not (None: where the
    hardware computes it, ``bf16_autocast``)."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import (
        BinaryCrossEntropyLoss,
        CrossEntropyLoss,
        MultipleNegativesRankingLoss,
    )
    from transformers import TrainerCallback, set_seed

    from rag.core.hardware import encoder_device

    set_seed(recipe.seed)
    device = encoder_device("auto")
    bf16 = bf16_autocast(device) if bf16 is None else bf16
    model = CrossEncoder(recipe.base, num_labels=recipe.labels, max_length=recipe.max_length,
                         device=device, model_kwargs={"ignore_mismatched_sizes": True})
    for name, param in model.named_parameters():
        if name.endswith("word_embeddings.weight"):
            param.requires_grad = False
    loss = (CrossEntropyLoss(model) if recipe.labels > 1 else
            MultipleNegativesRankingLoss(model, num_negatives=1) if recipe.loss == "listwise"
            else BinaryCrossEntropyLoss(model))
    saved = out / "curve.json"
    curve: list[dict[str, float]] = json.loads(saved.read_text()) if resume and saved.is_file() \
        else []

    class EachEpoch(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            losses = [e["loss"] for e in state.log_history if "loss" in e]
            point = {"epoch": round(float(state.epoch or 0), 2),
                     "train_loss": round(float(losses[-1]), 4) if losses else float("nan")}
            if evaluate is not None:
                model.eval()
                point.update(evaluate(model))
                model.train()
            curve.append(point)
            saved.write_text(json.dumps(curve, indent=1))

    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup, seed=recipe.seed, data_seed=recipe.seed,
        save_strategy="epoch", save_total_limit=1, logging_steps=25, report_to="none",
        use_cpu=device == "cpu", bf16=bf16, dataloader_drop_last=False, disable_tqdm=False)
    trainer = CrossEncoderTrainer(model=model, args=args, loss=loss, callbacks=[EachEpoch()],
                                  train_dataset=Dataset.from_dict(dict(columns)))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=bool(resume and checkpoints))
    seconds = time.perf_counter() - started
    model.save_pretrained(str(out / "model"))
    return Trained(out / "model", round(seconds, 1), curve, machine(bf16))
