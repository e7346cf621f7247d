"""Every index backend (FAISS + bm25s, Milvus Lite, Milvus's own BM25, a Milvus server) keeps the
contract of tests/storage/index_contract.py; then what is particular to Milvus: one process per
Lite folder, a server collection that takes only the difference, killed publishes and deletes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.core.children import child_env
from rag.core.errors import KBError
from rag.service.pipeline import Pipeline
from tests.helpers import write_corpus
from tests.storage.index_contract import BACKENDS, IndexBackendContract, make_pipeline, rows_in, sources


class TestIndexBackends(IndexBackendContract):
    @pytest.fixture(params=BACKENDS)
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
        if request.param.startswith("milvus"):
            pytest.importorskip("pymilvus")
            pytest.importorskip("milvus_lite")
        if request.param != "milvus-server":
            yield request.param
            return
        from milvus_lite.server_manager import server_manager_instance

        folder = str(tmp_path / "server.db")
        monkeypatch.setenv("RAG_TEST_MILVUS_URI", server_manager_instance.start_and_get_uri(folder))
        yield request.param
        server_manager_instance.release_server(folder)


def test_milvus_lite_in_use_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    pipeline = make_pipeline("milvus")
    pipeline.index([write_corpus(tmp_path / "docs")])
    pipeline.kb.snapshot()  # this process holds the snapshot's Milvus Lite folder
    code = ("from rag.core.config import load_settings; from rag.service.pipeline import Pipeline; "
            "from tests.fakes import HashEmbedder; from rag.core.errors import KBError\n"
            "p = Pipeline(load_settings(index={'backend': 'milvus'}), 'contract', "
            "embedder=HashEmbedder())\n"
            "try:\n    p.search('dogs')\nexcept KBError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False, env=child_env())
    assert "Milvus Lite allows one process per index" in out.stdout, out.stderr[-2000:]
    pipeline.kb.close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Milvus server URL (Milvus Lite served over gRPC), set for make_pipeline."""
    pytest.importorskip("milvus_lite")
    from milvus_lite.server_manager import server_manager_instance

    uri = server_manager_instance.start_and_get_uri(str(tmp_path / "server.db"))
    monkeypatch.setenv("RAG_TEST_MILVUS_URI", uri)
    yield uri
    server_manager_instance.release_server(str(tmp_path / "server.db"))


@pytest.fixture
def served(server: str, tmp_path: Path) -> Iterator[tuple[Pipeline, Path]]:
    """A KB indexed into the server, and its folder."""
    pipeline = make_pipeline("milvus-server")
    docs = write_corpus(tmp_path / "docs")
    pipeline.index([docs])
    yield pipeline, docs
    pipeline.kb.close()


def test_a_server_collection_takes_only_the_difference(
        server: str, served: tuple[Pipeline, Path]) -> None:
    pipeline, docs = served
    first = rows_in(server)
    (docs / "new.txt").write_text("Parrots talk back.\n")
    (docs / "dogs.txt").unlink()
    pipeline.index([docs])
    # One collection for the KB: the unchanged chunks stay as written (generation 1), the new
    # file's chunk is upserted (generation 2), the removed file's is deleted.
    assert rows_in(server) == len(pipeline.kb.snapshot()) == first
    assert (rows_in(server, 1), rows_in(server, 2)) == (first - 1, 1)
    assert "new.txt" in sources(pipeline, "Parrots talk") and "dogs.txt" not in sources(
        pipeline, "Dogs bark at the mailman")


def test_a_killed_publish_leaves_rows_no_snapshot_sees(
        server: str, served: tuple[Pipeline, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.storage.kb as kb

    pipeline, docs = served
    live = pipeline.kb.current_id()
    (docs / "new.txt").write_text("Parrots talk back.\n")

    def killed(folder: Path) -> None:  # the collection took the new rows, the swap never came
        raise OSError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(kb, "_fsync_tree", killed)
        with pytest.raises(KBError, match="killed; the previous index stays live"):
            pipeline.index([docs])
    assert pipeline.kb.current_id() == live and rows_in(server) == 4
    assert "new.txt" not in sources(pipeline, "Parrots talk")
    pipeline.index([docs])  # deletes the orphan rows first, then adds them again
    assert rows_in(server) == len(pipeline.kb.snapshot()) == 4
    assert "new.txt" in sources(pipeline, "Parrots talk")


def test_deletes_a_killed_job_missed_are_redone(
        server: str, served: tuple[Pipeline, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.storage import milvus_index

    pipeline, docs = served
    with monkeypatch.context() as patch:  # killed after the swap, before the deletes
        patch.setattr(milvus_index, "finish", lambda *args: None)
        pipeline.remove([str(docs / "dogs.txt")])
    assert rows_in(server) == 3 and len(pipeline.kb.snapshot()) == 2
    assert "dogs.txt" not in sources(pipeline, "Dogs bark at the mailman")
    (docs / "new.txt").write_text("Parrots talk back.\n")
    pipeline.index([docs])  # dogs.txt is still in the folder: its chunks come back, once
    assert rows_in(server) == len(pipeline.kb.snapshot()) == 4
    assert {"dogs.txt", "new.txt"} <= sources(pipeline, "Dogs bark at the mailman. Parrots talk")


def test_two_readers_in_one_process_share_a_milvus_lite_folder(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    first = make_pipeline("milvus")
    first.index([write_corpus(tmp_path / "docs")])
    assert first.search("mailman", mode="dense").hits
    second = make_pipeline("milvus")
    assert second.search("mailman", mode="dense").hits
    second.kb.close()  # the first one's searches go on
    assert first.search("mailman", mode="dense").hits[0].chunk.source.endswith("dogs.txt")
    first.kb.close()
