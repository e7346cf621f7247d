"""docker-compose.yml is valid (docker-compose config, no engine needed) and complete."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None and not os.environ.get("CI"),
    reason="Debian's docker-compose is not installed (make setup installs it as root)",
)


def compose(*profiles: str, scale: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    args = ["docker-compose", "-f", str(ROOT / "docker-compose.yml")]
    if scale:
        args += ["-f", str(ROOT / "docker-compose.scale.yml")]
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


SCALE_SECRETS = {"RAG_MINIO_USER": "rag-minio", "RAG_MINIO_PASSWORD": "m" * 24,
                 "RAG_MILVUS_PASSWORD": "v" * 24}


def config(*profiles: str, scale: bool = False, **env: str) -> dict:  # type: ignore[type-arg]
    secrets = {"RAG_LLM_API_KEY": "k" * 32, **(SCALE_SECRETS if scale else {})}
    out = compose(*profiles, scale=scale, **{**secrets, **env})
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
    assert {v.split(":")[0] for v in app["volumes"]} == {"rag-home", "rag-docs", "model-cache"}
    assert {"rag-home", "rag-docs", "model-cache"} <= set(cfg["volumes"])


def test_profiles_select_gpu_or_cpu_server() -> None:
    services = config()["services"]
    assert "profiles" not in services["app"]
    assert services["vllm"]["profiles"] == ["gpu"]
    assert services["vllm-cpu"]["profiles"] == ["cpu"]
    assert not {"milvus", "milvus-etcd", "milvus-minio", "ray-head"} & set(services)


def app_settings(app: dict, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def, type-arg]
    """The settings the app's container would load from the environment compose gives it."""
    from rag.core.config import load_settings

    for key, value in app["environment"].items():
        if key.startswith("RAG_"):
            monkeypatch.setenv(key, str(value))
    return load_settings()


def test_compose_needs_an_api_key_and_can_publish_on_purpose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.service.exposure import exposure_problem

    out = compose("cpu")
    assert out.returncode != 0 and "RAG_LLM_API_KEY" in out.stderr
    app = config(RAG_UI_BIND="0.0.0.0")["services"]["app"]
    assert published(app) == [("0.0.0.0", 8501)]
    # Published beyond loopback with no sign-in: the app refuses to start.
    assert "no sign-in" in exposure_problem(app_settings(app, monkeypatch).ui, "0.0.0.0")
    assert exposure_problem(app_settings(config()["services"]["app"], monkeypatch).ui,
                            "0.0.0.0") is None  # loopback-published: open is fine


@pytest.mark.parametrize("env, check", [
    ({"RAG_UI_AUTH_TOKEN": "t" * 24}, lambda ui: ui.auth_token == "t" * 24),
    ({"RAG_UI_AUTH_HEADER": "X-Forwarded-User", "RAG_UI_TRUSTED_PROXIES": "172.30.0.0/16"},
     lambda ui: ui.auth_header == "X-Forwarded-User" and ui.trusted_proxies == ["172.30.0.0/16"]),
])
def test_every_documented_auth_setting_reaches_the_app(env: dict, check,  # noqa: ANN001
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """As docker-compose.yml's comment says: bind beyond loopback with a token, or with a proxy
    header and the proxy's address."""
    from rag.service.exposure import exposure_problem

    app = config(RAG_UI_BIND="0.0.0.0", **env)["services"]["app"]
    ui = app_settings(app, monkeypatch).ui
    assert check(ui) and ui.published_host == "0.0.0.0"
    assert exposure_problem(ui, "0.0.0.0") is None


def test_the_api_runs_beside_the_app_loopback_only_unless_keys_exist(
        monkeypatch: pytest.MonkeyPatch, rag_home: Path) -> None:
    from rag.service.exposure import api_exposure_problem
    from rag.storage.keys import KeyStore

    api = config()["services"]["api"]
    assert api["command"][:2] == ["rag", "serve"] and published(api) == [("127.0.0.1", 8100)]
    assert api["environment"]["RAG_GENERATOR__SERVER_URL"] == "http://llm:8000/v1"
    assert api["user"] == "1000:1000" and "/health" in " ".join(api["healthcheck"]["test"])
    assert {v.split(":")[0] for v in api["volumes"]} <= {"rag-home", "model-cache"}
    settings = app_settings(api, monkeypatch)
    assert api_exposure_problem(settings.api, "0.0.0.0", False) is None  # loopback-published
    exposed = config(RAG_API_BIND="0.0.0.0")["services"]["api"]
    assert published(exposed) == [("0.0.0.0", 8100)]
    settings = app_settings(exposed, monkeypatch)
    assert "no API keys" in api_exposure_problem(settings.api, "0.0.0.0", False)  # type: ignore[operator]
    KeyStore(rag_home).create(["docs"], "admin")
    assert api_exposure_problem(settings.api, "0.0.0.0",
                                KeyStore(rag_home).required()) is None


def test_image_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}


def test_scale_file_adds_milvus_and_a_ray_head_none_open() -> None:
    out = compose(scale=True, RAG_LLM_API_KEY="k" * 32)  # no credentials: refused, no defaults
    assert out.returncode != 0 and "RAG_MI" in out.stderr
    cfg = config(scale=True)
    services = cfg["services"]
    assert {"milvus", "milvus-etcd", "milvus-minio", "ray-head"} <= set(services)
    for name, service in services.items():
        assert not [p for p in published(service) if p[0] != "127.0.0.1"], name
    for name in ("milvus", "milvus-etcd", "milvus-minio", "ray-head"):
        assert "ports" not in services[name], name
        assert "default" not in services[name]["networks"], name  # internal networks only
    assert cfg["networks"]["scale"]["internal"] and cfg["networks"]["milvus-meta"]["internal"]
    assert list(services["milvus-etcd"]["networks"]) == ["milvus-meta"]
    milvus = services["milvus"]
    assert milvus["image"].startswith("milvusdb/milvus:v2.5")  # pinned, full-text BM25
    assert milvus["environment"]["COMMON_SECURITY_AUTHORIZATIONENABLED"] == "true"
    assert milvus["environment"]["COMMON_SECURITY_DEFAULTROOTPASSWORD"] == "v" * 24
    minio = services["milvus-minio"]["environment"]
    assert (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]) == ("rag-minio", "m" * 24)
    assert "minioadmin" not in yaml.safe_dump(cfg)
    app = services["app"]["environment"]
    assert app["RAG_INDEX__BACKEND"] == "milvus"
    assert app["RAG_INDEX__MILVUS_URI"] == "http://milvus:19530"
    assert app["RAG_INDEX__MILVUS_TOKEN"] == "root:" + "v" * 24
    bucket = milvus["environment"]["MINIO_BUCKET_NAME"]  # bulk-import files go where Milvus reads
    assert app["RAG_INDEX__MILVUS_BULK_STORE"].startswith(f"s3://rag-minio:{'m' * 24}@{bucket}/")
    assert "endpoint_override=milvus-minio:9000" in app["RAG_INDEX__MILVUS_BULK_STORE"]
    head = services["ray-head"]
    assert head["image"] == services["app"]["image"]  # same rag and Ray versions
    assert app["RAG_JOBS__RAY_ADDRESS"].startswith("ray-head:")
    assert "--dashboard-host=127.0.0.1" in head["command"]  # its job API stays in its container
    assert not [a for a in head["command"] if "0.0.0.0" in a]
    # Ray reads the documents to index at the app's paths, and nothing of $RAG_HOME.
    mounts = {v["source"] if isinstance(v, dict) else v.split(":")[0]: v for v in head["volumes"]}
    assert set(mounts) == {"rag-docs", "model-cache"}
    assert config()["services"]["app"]["environment"].get("RAG_INDEX__BACKEND") is None
