"""docker-compose.yml is valid (docker-compose config, no engine needed) and complete."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None and not os.environ.get("CI"),
    reason="Debian's docker-compose is not installed (make setup installs it as root)",
)


def config(*profiles: str) -> dict:  # type: ignore[type-arg]
    args = ["docker-compose", "-f", str(ROOT / "docker-compose.yml")]
    for p in profiles:
        args += ["--profile", p]
    out = subprocess.run([*args, "config"], capture_output=True, text=True, check=False,
                         env={**os.environ, "RAG_LLM_MODEL": "Qwen/Qwen2.5-7B-Instruct"})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_services_images_ports_volumes_healthchecks() -> None:
    cfg = config("gpu", "cpu")
    services = cfg["services"]
    assert set(services) == {"app", "vllm", "vllm-cpu"}
    assert services["vllm"]["image"].startswith("vllm/vllm-openai")
    assert "vllm-cpu" in services["vllm-cpu"]["image"]
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for name in ("vllm", "vllm-cpu"):
        svc = services[name]
        assert any(p["target"] == 8000 for p in svc["ports"])
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        assert "llm" in svc["networks"]["default"]["aliases"]
        assert "--served-model-name" in svc["command"]
        assert {v.split(":")[0] for v in svc["volumes"]} >= {"model-cache", "rag-home"}
    app = services["app"]
    assert app["environment"]["RAG_GENERATOR__MODE"] == "served"
    assert app["environment"]["RAG_GENERATOR__SERVER_URL"] == "http://llm:8000/v1"
    assert app["environment"]["RAG_HOME"].startswith("/data")
    assert app["command"][:2] == ["rag", "ui"] and "0.0.0.0" in app["command"]
    assert any(p["target"] == 8501 for p in app["ports"])
    assert app["environment"]["RAG_UI__START_LLM"] == "false"
    assert {v.split(":")[0] for v in app["volumes"]} == {"rag-home", "model-cache"}
    assert set(cfg["volumes"]) == {"rag-home", "model-cache"}


def test_profiles_select_gpu_or_cpu_server() -> None:
    services = config()["services"]
    assert "profiles" not in services["app"]
    assert services["vllm"]["profiles"] == ["gpu"]
    assert services["vllm-cpu"]["profiles"] == ["cpu"]
