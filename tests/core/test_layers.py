"""The layer contract in pyproject.toml holds, and it covers every package: a package added to
rag/ without a place in a layer would escape it."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import rag

ROOT = Path(__file__).resolve().parents[2]


def layered_modules() -> set[str]:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"][0]
    assert contract["type"] == "layers"
    return {m.strip() for layer in contract["layers"] for m in re.split(r"[|:]", layer)}


def test_every_package_is_in_a_layer() -> None:
    packages = {f"rag.{m.name}" for m in pkgutil.iter_modules(rag.__path__)}
    missing = packages - layered_modules()
    assert not missing, "add to the layers in [tool.importlinter]: " + ", ".join(sorted(missing))
    assert {"ingest", "eval", "ui"} <= layered_modules()


def test_the_import_layers_hold() -> None:
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                          " lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "broken" in run.stdout and "0 broken" in run.stdout
