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


def compose(*profiles: str, **env: str) -> subprocess.CompletedProcess[str]:
    args = ["docker-compose", "-f", str(ROOT / "docker-compose.yml")]
    for p in profiles:
        args += ["--profile", p]
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return subprocess.run([*args, "config"], capture_output=True, text=True, check=False,
                          env={**base, "RAG_LLM_MODEL": "Qwen/Qwen2.5-7B-Instruct", **env})


def published(service: dict) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    """(host address, container port) of each published port, short or long syntax."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip", "0.0.0.0"), int(p["target"])))
        else:
            parts = str(p).split("/")[0].split(":")
            out.append((parts[0] if len(parts) == 3 else "0.0.0.0", int(parts[-1])))
    return out


def config(*profiles: str, **env: str) -> dict:  # type: ignore[type-arg]
    out = compose(*profiles, **{"RAG_LLM_API_KEY": "k" * 32, **env})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_services_images_ports_volumes_healthchecks() -> None:
    cfg = config("gpu", "cpu")
    services = cfg["services"]
    assert {"app", "vllm", "vllm-cpu", "volumes-init"} <= set(services)
    assert services["vllm"]["image"].startswith("vllm/vllm-openai")
    assert "vllm-cpu" in services["vllm-cpu"]["image"]
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for name in ("vllm", "vllm-cpu"):
        svc = services[name]
        assert "ports" not in svc and svc["expose"] == ["8000"]  # only the app reaches vLLM
        assert svc["environment"]["VLLM_API_KEY"] == "k" * 32
        assert svc["user"] == "1000:1000"
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        assert "llm" in svc["networks"]["default"]["aliases"]
        assert "--served-model-name" in svc["command"]
        assert {v.split(":")[0] for v in svc["volumes"]} == {"model-cache"}
    app = services["app"]
    assert app["environment"]["RAG_GENERATOR__MODE"] == "served"
    assert app["environment"]["RAG_GENERATOR__SERVER_URL"] == "http://llm:8000/v1"
    assert app["environment"]["RAG_HOME"].startswith("/data")
    assert app["command"][:2] == ["rag", "ui"] and "0.0.0.0" in app["command"]
    assert published(app) == [("127.0.0.1", 8501)]
    assert app["environment"]["RAG_GENERATOR__API_KEY"] == "k" * 32
    assert app["user"] == "1000:1000" and "user" not in services["volumes-init"] or \
        services["volumes-init"]["user"] == "0:0"
    assert app["environment"]["RAG_UI__START_LLM"] == "false"
    assert {v.split(":")[0] for v in app["volumes"]} == {"rag-home", "model-cache"}
    assert {"rag-home", "model-cache"} <= set(cfg["volumes"])


def test_profiles_select_gpu_or_cpu_server() -> None:
    services = config()["services"]
    assert "profiles" not in services["app"]
    assert services["vllm"]["profiles"] == ["gpu"]
    assert services["vllm-cpu"]["profiles"] == ["cpu"]
    for name in ("milvus", "milvus-etcd", "milvus-minio", "ray-head"):
        assert services[name]["profiles"] == ["scale"]


def test_compose_needs_an_api_key_and_can_publish_on_purpose() -> None:
    out = compose("cpu")
    assert out.returncode != 0 and "RAG_LLM_API_KEY" in out.stderr
    app = config(RAG_UI_BIND="0.0.0.0")["services"]["app"]
    assert published(app) == [("0.0.0.0", 8501)]


def test_image_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}


def test_scale_profile_adds_milvus_and_a_ray_head_sharing_the_data() -> None:
    services = config("scale", RAG_INDEX_BACKEND="milvus")["services"]
    assert {"milvus", "milvus-etcd", "milvus-minio", "ray-head"} <= set(services)
    milvus = services["milvus"]
    assert milvus["image"].startswith("milvusdb/milvus:v2.5")  # pinned, full-text BM25
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "milvus-etcd:2379"
    assert "ports" not in milvus and "19530" in milvus["expose"]
    app = services["app"]["environment"]
    assert app["RAG_INDEX__BACKEND"] == "milvus"
    assert app["RAG_INDEX__MILVUS_URI"] == "http://milvus:19530"
    bucket = milvus["environment"]["MINIO_BUCKET_NAME"]  # bulk-import files go where Milvus reads
    assert app["RAG_INDEX__MILVUS_BULK_STORE"].startswith(f"s3://minioadmin:minioadmin@{bucket}/")
    assert "endpoint_override=milvus-minio:9000" in app["RAG_INDEX__MILVUS_BULK_STORE"]
    head = services["ray-head"]
    assert head["image"] == services["app"]["image"]  # same rag and Ray versions
    assert app["RAG_JOBS__RAY_ADDRESS"].startswith("ray-head:")
    # Ray tasks read the files to index at the app's paths.
    assert "rag-home:/data/rag" in [f"{v['source']}:{v['target']}" if isinstance(v, dict)
                                    else v.removesuffix(":rw") for v in head["volumes"]]
    assert config()["services"]["app"]["environment"]["RAG_INDEX__BACKEND"] == "faiss"
