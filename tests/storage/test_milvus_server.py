"""The Milvus backend against a real Milvus standalone server (the `milvus` package's embedded
build, 2.3.5, local storage): bulk import of a large load, upserts and deletes of small updates,
all searchable through the same pipeline. Skipped where that build does not install (not
linux x86_64)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.core.config import load_settings
from rag.core.errors import KBError
from rag.service.pipeline import Pipeline
from rag.storage import milvus_index
from tests.fakes import ExtractiveGenerator, HashEmbedder
from tests.helpers import write_corpus
from tests.storage.index_contract import rows_in, sources


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    milvus = pytest.importorskip("milvus")
    pytest.importorskip("pymilvus")
    server = milvus.MilvusServer(wait_for_started=True)
    server.set_base_dir(str(tmp_path_factory.mktemp("milvus-standalone")))
    server.show_startup_banner = False
    try:  # its embedded etcd takes the fixed peer port 2380: one such server per machine
        server.start()
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


def test_bulk_import_then_upserts_and_deletes(standalone: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    imports: list[int] = []
    real_import = milvus_index.bulk_import

    def counted(conn: object, name: str, ids: list[str], *args: object) -> None:
        imports.append(len(ids))
        real_import(conn, name, ids, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(milvus_index, "bulk_import", counted)
    store = tmp_path / "import"  # a folder this local-storage server reads
    settings = load_settings(index={
        "backend": "milvus", "milvus_uri": standalone, "kind": "hnsw",
        "milvus_bulk_store": str(store), "milvus_bulk_rows": 3})
    pipeline = Pipeline(settings, "standalone", embedder=HashEmbedder())
    docs = write_corpus(tmp_path / "docs")
    pipeline.index([docs])
    assert imports == [3] and rows_in(standalone, 1) == 3
    assert list(store.iterdir()) == []  # the import files are removed once loaded
    snap = pipeline.kb.snapshot()
    _, _, vectors = snap.store.current_rows(pipeline.embedder.dim)
    query = pipeline.embedder.embed_query("Dogs bark at the mailman")
    rows, scores = snap.dense.search(query[None, :], 3)
    assert np.allclose(scores[0], vectors[rows[0]] @ query, atol=1e-4)
    assert sources(pipeline, "Dogs bark at the mailman") >= {"dogs.txt"}

    # A small update: one new file upserted, one removed file deleted, in the same collection.
    (docs / "new.txt").write_text("Parrots talk back.\n")
    (docs / "dogs.txt").unlink()
    pipeline.index([docs])
    assert imports == [3]
    assert (rows_in(standalone, 1), rows_in(standalone, 2)) == (2, 1)
    assert "new.txt" in sources(pipeline, "Parrots talk")
    assert "dogs.txt" not in sources(pipeline, "Dogs bark at the mailman")
    pipeline._generator = ExtractiveGenerator()
    answer = pipeline.ask("What do parrots do?")
    assert "talk" in answer.text and any(s["cited"] for s in answer.sources)
    pipeline.kb.close()


def test_an_unreachable_bulk_store_fails_the_publish_and_keeps_the_index(
        standalone: str, tmp_path: Path) -> None:
    index = {"backend": "milvus", "milvus_uri": standalone, "kind": "flat"}
    pipeline = Pipeline(load_settings(index=index), "unreachable", embedder=HashEmbedder())
    docs = write_corpus(tmp_path / "docs")
    pipeline.index([docs])
    live = pipeline.kb.current_id()
    pipeline.kb.close()
    (docs / "new.txt").write_text("Parrots talk back.\n")
    wrong = Pipeline(load_settings(index={
        **index, "milvus_bulk_rows": 1,
        "milvus_bulk_store": "s3://key:secret@a-bucket/import?endpoint_override=127.0.0.1:9&scheme=http"}),
        "unreachable", embedder=HashEmbedder())
    with pytest.raises(KBError, match="cannot write the index.*connect.*the previous index stays live"):
        wrong.index([docs])
    assert wrong.kb.current_id() == live
    assert "dogs.txt" in sources(wrong, "Dogs bark at the mailman")
    wrong.kb.close()
    fixed = Pipeline(load_settings(index=index), "unreachable", embedder=HashEmbedder())
    fixed.index([docs])
    assert "new.txt" in sources(fixed, "Parrots talk")
    assert len(fixed.kb.snapshot()) == 4
    fixed.kb.close()
