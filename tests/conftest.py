from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPERS = SHARED / "corpora" / "papers"
PDF_EDGE = SHARED / "corpora" / "pdf-edge"
SCIFACT = SHARED / "datasets" / "scifact"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


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
    # No `rag ask` leaves an ask worker behind (tests/test_ask_worker.py turns it on).
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
    """Converted LLMs shared by every test of the session: the user's ~/.rag/models when it
    already holds them, else one session folder (the bundled model converts once, ~1 min)."""
    user = Path("~/.rag/models").expanduser()
    if (user / "qwen2.5-coder-0.5b-instruct" / "config.json").is_file():
        return user
    return tmp_path_factory.mktemp("models")


def link_models(home: Path, models: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(models, target_is_directory=True)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:  # type: ignore[type-arg]
    """Stop a child started with start_new_session=True, and everything it started."""
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_up(url: str, proc: subprocess.Popen, what: str, timeout: float = 120,  # type: ignore[type-arg]
            log: Path | None = None) -> None:
    """Wait until GET ``url`` answers 200; fail if ``proc`` exits first or time runs out (with
    the end of its ``log``)."""
    import time

    import httpx

    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        assert proc.poll() is None, f"{what} exited: {tail}"
        assert time.time() < deadline, f"{what} did not start: {tail}"
        time.sleep(0.5)
