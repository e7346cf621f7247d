"""The layer contracts in pyproject.toml hold, and they cover every module: a module added to
rag/ without a line in the faces-on-top contract would escape it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import rag

ROOT = Path(__file__).resolve().parents[1]
FACES = {"rag.cli", "rag.api"}


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]


def test_every_module_below_the_faces_is_in_the_contract() -> None:
    below = {f"rag.{m.name}" for m in pkgutil.iter_modules(rag.__path__)} - FACES
    faces_on_top = next(c for c in contracts() if c["type"] == "forbidden")
    assert below <= set(faces_on_top["source_modules"]), "add to [tool.importlinter]: " + \
        ", ".join(sorted(below - set(faces_on_top["source_modules"])))
    assert FACES | {"ui"} == set(faces_on_top["forbidden_modules"])


def test_the_import_layers_hold() -> None:
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                          " lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "broken" in run.stdout and "0 broken" in run.stdout
