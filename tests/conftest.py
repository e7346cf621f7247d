from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs the bundled 0.5B generator on every machine, in module-scoped fixtures too:
# the 1.5B that generator.model = "auto" picks on bf16 CPUs would triple the integration
# tests' time; the choice itself is tested in tests/core/test_config.py.
SUITE_GENERATOR = "bundled:qwen2.5-coder-0.5b-instruct"
os.environ["RAG_GENERATOR__MODEL"] = SUITE_GENERATOR


@pytest.fixture(autouse=True)
def rag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> Iterator[Path]:
    """All user state in tmp; no stray RAG_* settings leak in from the developer's shell, nor
    out of a test (``rag --config`` sets RAG_CONFIG for the processes it starts). Unit tests
    run the learned support function (the verifier's fallback) so that they stay fast and test
    one thing; integration tests run the shipped claim verifier."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("RAG_CITATIONS__VERIFIER_MODEL", "")
    home = tmp_path / "rag-home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("RAG_GENERATOR__MODEL", SUITE_GENERATOR)
    # No `rag ask` leaves an ask worker behind (tests/service/test_ask_worker.py turns it on).
    monkeypatch.setenv("RAG_GENERATOR__ASK_WORKER_IDLE_S", "0")
    monkeypatch.chdir(tmp_path)
    before = {key for key in os.environ if key.startswith("RAG_")}
    yield home
    for key in [k for k in os.environ if k.startswith("RAG_") and k not in before]:
        del os.environ[key]


@pytest.fixture(autouse=True)
def no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests must not reach the network; integration tests may use loopback only."""
    if request.node.get_closest_marker("integration"):
        return
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family == socket.AF_UNIX or host in {"127.0.0.1", "::1", "localhost"}:
            return real_connect(self, address)  # type: ignore[arg-type]
        raise OSError(f"network access blocked in unit tests ({host})")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def minilm():
    """The bundled real embedder, loaded once per session."""
    from rag.core.config import EmbedderSettings
    from rag.embedding.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbedderSettings(device="cpu"))
    embedder.model  # noqa: B018 - load now
    return embedder


@pytest.fixture
def settings(rag_home: Path):
    from rag.core.config import load_settings

    return load_settings()


@pytest.fixture
def fake_pipeline(settings):
    from rag.service.pipeline import Pipeline
    from tests.fakes import HashEmbedder, ReverseReranker

    return Pipeline(settings, "test", embedder=HashEmbedder(), reranker=ReverseReranker())


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted LLMs shared by every test of the session, in one session folder (the bundled
    model converts once, about a minute), or in ``TEST_MODELS_DIR`` when a developer names a
    folder to keep them between runs. Never the user's ~/.rag."""
    kept = os.environ.get("TEST_MODELS_DIR")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    return tmp_path_factory.mktemp("models")


