"""The Ray runner builds the same KB as the local runner, incrementally, and a killed Ray job
leaves the previous KB searchable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.core.config import load_settings
from rag.service.pipeline import Pipeline
from tests.fakes import HashEmbedder
from tests.helpers import JOB, finds, make_files, write_corpus

pytest.importorskip("ray")


class Counting:
    def __init__(self) -> None:
        self.embedded = 0

    def start(self, files: int) -> None: ...
    def file_done(self, path: str) -> None: ...

    def chunks_done(self, count: int) -> None:
        self.embedded += count


def make(runner: str, kb: str) -> Pipeline:
    return Pipeline(load_settings(jobs={"runner": runner}), kb, embedder=HashEmbedder())


def state(p: Pipeline) -> tuple[list[str], np.ndarray, dict[str, tuple[object, ...]]]:
    ids, _, vectors = p.kb.store.current_rows(p.embedder.dim)
    files = {path: (r.sha256, r.kind, r.title, r.n_docs, r.n_chunks, r.warnings)
             for path, r in p.kb.store.files().items()}
    return ids, vectors, files


def same_kb(a: Pipeline, b: Pipeline) -> None:
    ids_a, vec_a, files_a = state(a)
    ids_b, vec_b, files_b = state(b)
    assert ids_a == ids_b and files_a == files_b
    assert np.allclose(vec_a, vec_b, atol=1e-6)


def summary(report) -> tuple[object, ...]:  # noqa: ANN001
    return (report.files_seen, report.indexed, report.unchanged, report.removed,
            report.chunks_added, report.chunks_removed,
            sorted((f.path, f.reason) for f in report.failed))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module's jobs (a runner reuses a running Ray; start-up is ~8 s)."""
    import ray

    from ingest.runners.ray_data import start_ray

    started = start_ray("")
    yield
    if started:
        ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_ray_runner_gives_the_local_runners_kb_incrementally(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "long.md").write_text("# Long\n\n" + " ".join(f"word{i}." for i in range(400)))
    local, ray = make("local", "local"), make("ray", "ray")
    first = local.index([docs]), ray.index([docs])
    assert summary(first[0]) == summary(first[1]) and first[1].failed
    same_kb(local, ray)

    (docs / "dogs.txt").write_text("Dogs bark at the mailman. Dogs love long walks. Puppies nap.\n")
    (docs / "cats.md").unlink()
    (docs / "new.txt").write_text("Parrots talk back.\n")
    counting = Counting()
    second = local.index([docs]), ray.index([docs], progress=counting)
    assert summary(second[0]) == summary(second[1])
    assert (second[1].indexed, second[1].removed) == (2, 1)  # dogs and new; cats removed
    assert counting.embedded == 2  # the two new texts; unchanged files are not read again
    same_kb(local, ray)
    assert ray.search("parrots", mode="hybrid").hits[0].chunk.source.endswith("new.txt")
    assert not list((ray.kb.path / "staging").glob("*"))  # shards are gone once committed


def test_a_killed_ray_job_leaves_the_previous_kb(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    make_files(folder, "alpha", 5)
    Pipeline(load_settings(), "crash", embedder=HashEmbedder()).index([folder])
    before = Pipeline(load_settings(), "crash").kb.current_id()
    make_files(folder, "beta", 60)
    env = {**os.environ, "PYTHONPATH": str(JOB.parents[1])}
    proc = subprocess.Popen([sys.executable, str(JOB), str(folder), "--ray"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    staging = Path(os.environ["RAG_HOME"]) / "kb" / "crash" / "staging"
    deadline = time.monotonic() + 240
    while not staging.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4)  # Ray is starting or embedding (60 texts at 0.2 s each)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert Pipeline(load_settings(), "crash").kb.current_id() == before
    assert finds("alpha") and not finds("beta")
    report = Pipeline(load_settings(), "crash", embedder=HashEmbedder()).index([folder])
    assert report.ok and finds("beta")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.integration
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")
def test_ray_runner_embeds_with_one_gpu_per_actor(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    local = Pipeline(load_settings(), "local")
    ray = Pipeline(load_settings(jobs={"runner": "ray"}), "ray")
    assert summary(local.index([docs])) == summary(ray.index([docs]))
    ids_l, vec_l, _ = state(local)
    ids_r, vec_r, _ = state(ray)
    assert ids_l == ids_r and np.min(np.sum(vec_l * vec_r, axis=1)) > 0.999
