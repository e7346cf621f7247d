from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli.main import cli
from tests.helpers import write_corpus


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [[], ["index"], ["search"], ["eval", "retrieval"], ["kb"],
                                     ["kb", "list"], ["config"], ["eval", "fusion"],
                                     ["models"], ["models", "install"]])
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0 and "Usage:" in out


def test_installing_a_licensed_model_asks_for_its_terms() -> None:
    code, out, err = run("models", "install", "embeddinggemma-300m")
    assert code == 1 and "Gemma Terms of Use" in out
    assert err.startswith("error: embeddinggemma-300m is under its own licence terms")


def test_missing_kb_is_one_line_error() -> None:
    code, _, err = run("search", "hello", "--kb", "nope")
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("error: knowledge base 'nope' does not exist")


def test_bad_config_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_RETRIEVAL__MODE", "fuzzy")
    code, _, err = run("config")
    assert code == 1 and err.startswith("error: invalid configuration") and "retrieval.mode" in err


def test_config_hides_secrets_and_checks_scale_out_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_INDEX__MILVUS_TOKEN", "root:s3cret")
    monkeypatch.setenv("RAG_INDEX__MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("RAG_INDEX__MILVUS_BULK_STORE", "s3://minio:s3cret@a-bucket/import")
    monkeypatch.setenv("RAG_GENERATOR__API_KEY", "k" * 20)
    code, out, _ = run("config")
    settings = json.loads(out)
    assert code == 0 and "s3cret" not in out and "k" * 20 not in out
    assert settings["index"]["milvus_token"] == "***" and settings["jobs"]["runner"] == "local"
    assert settings["index"]["milvus_bulk_store"] == "***"
    monkeypatch.setenv("RAG_INDEX__MILVUS_URI", "milvus.example.com")
    code, _, err = run("config")
    assert code == 1 and "index.milvus_uri must be empty (Milvus Lite) or a server URL" in err
    monkeypatch.setenv("RAG_INDEX__MILVUS_URI", "")
    code, _, err = run("config")
    assert code == 1 and "milvus_bulk_store needs a Milvus server" in err


def test_index_runner_ray_is_an_option() -> None:
    code, out, _ = run("index", "--help")
    assert code == 0 and "--runner [local|ray]" in out and "--ray-address" in out


def test_eval_rejects_non_beir_folder(tmp_path: Path) -> None:
    code, _, err = run("eval", "retrieval", "--dataset", str(tmp_path))
    assert code == 1 and "not a BEIR dataset" in err


def test_kb_list_empty() -> None:
    code, out, _ = run("kb", "list", "--json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.integration
def test_document_text_is_printed_literally(tmp_path: Path) -> None:
    """Brackets in documents are not rich markup: "[n]" and "[bold]" stay visible."""
    (tmp_path / "markup.txt").write_text("Citation markers like [n] and [bold]x[/bold] are text.\n")
    assert run("index", str(tmp_path / "markup.txt"), "--kb", "m")[0] == 0
    code, out, _ = run("search", "citation markers", "--kb", "m", "--mode", "bm25")
    assert code == 0 and "[n]" in out and "[bold]x[/bold]" in out


@pytest.mark.integration
def test_index_search_json_roundtrip(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    code, out, _ = run("index", str(docs), "--kb", "t", "--json")
    report = json.loads(out)
    assert code == 0
    assert set(report) >= {"files_seen", "indexed", "unchanged", "removed", "failed",
                           "chunks_added", "chunks_removed", "seconds"}
    assert report["indexed"] == 3
    code, out, _ = run("index", str(docs), "--kb", "t", "--json")
    assert json.loads(out)["unchanged"] == 3 and json.loads(out)["chunks_added"] == 0
    code, out, _ = run("search", "Which animal barks?", "--kb", "t", "-k", "2", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["source"].endswith("dogs.txt")
    assert set(hits[0]["scores"]) == {"dense", "bm25", "fused", "rerank"}
    code, out, _ = run("search", "Which animal barks?", "--kb", "t", "--mode", "dense")
    assert code == 0 and "dogs" in out
    code, out, _ = run("kb", "list")
    assert code == 0 and "t" in out


@pytest.mark.integration
def test_index_nothing_indexable_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "e.txt").write_bytes(b"")
    code, out, _ = run("index", str(tmp_path / "e.txt"), "--kb", "t")
    assert code == 1 and "empty file" in out


@pytest.mark.integration
def test_rerank_with_unavailable_model_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    docs = write_corpus(tmp_path / "docs")
    run("index", str(docs), "--kb", "t")
    monkeypatch.setenv("RAG_RERANKER__MODEL", str(tmp_path / "no-such-model"))
    code, out, _ = run("search", "dogs", "--kb", "t", "--rerank", "--json")
    result = json.loads(out)
    assert code == 0 and result["hits"] and result["reranker"] is None
    assert "continuing without reranking" in result["warnings"][0]


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI with the hash embedder: the command layer, not the model, is under test."""
    from tests.fakes import HashEmbedder

    monkeypatch.setattr("rag.service.pipeline.SentenceTransformerEmbedder",
                        lambda settings, **_: HashEmbedder())


def one_line_error(code: int, err: str) -> str:
    """Exit 1 and one 'error:' line last on stderr (above it at most the progress bar)."""
    lines = err.strip().splitlines()
    assert code == 1 and lines[-1].startswith("error: "), err
    assert "Traceback" not in err and sum(line.startswith("error") for line in lines) == 1
    return lines[-1]


def test_markup_in_file_names_is_printed_literally(fake_embedder: None, tmp_path: Path) -> None:
    (tmp_path / "a[").mkdir()
    (tmp_path / "a[" / "b].txt").write_text("Brackets in a file name.")
    (tmp_path / "a[" / "[red]empty.txt").write_text("")
    code, out, _ = run("index", str(tmp_path / "a["), "--kb", "m")
    assert code == 0 and "[red]empty.txt" in out


def test_prune_and_kb_remove(fake_embedder: None, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    assert run("index", str(docs), "--kb", "p")[0] == 0
    (docs / "dogs.txt").unlink()
    code, out, _ = run("kb", "remove", str(docs / "dogs.txt"), "--kb", "p")
    assert code == 0 and "removed 1 file(s)" in out
    code, _, err = run("kb", "remove", str(docs / "dogs.txt"), "--kb", "p")
    one_line_error(code, err)
    import shutil

    shutil.rmtree(docs)
    one_line_error(*run("index", str(docs), "--kb", "p")[::2])
    code, out, _ = run("index", str(docs), "--kb", "p", "--prune", "--json")
    assert json.loads(out)["removed"] == 2


def test_storage_errors_are_one_line(fake_embedder: None, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk or read-only RAG_HOME (as root, permissions do not stop writes: simulated)."""
    import sqlite3

    docs = write_corpus(tmp_path / "docs")

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("rag.storage.store.ChunkStore.add_vectors", full)
    err = one_line_error(*run("index", str(docs), "--kb", "s")[::2])
    assert "disk is full" in err
    monkeypatch.undo()

    def faiss_full(index: object, path: object) -> None:
        raise RuntimeError("Error in faiss::FileIOWriter: fwrite failed: No space left on device")

    from tests.fakes import HashEmbedder

    monkeypatch.setattr("rag.service.pipeline.SentenceTransformerEmbedder",
                        lambda settings, **_: HashEmbedder())
    monkeypatch.setattr("rag.storage.snapshot_build.save_index", faiss_full)
    err = one_line_error(*run("index", str(docs), "--kb", "s")[::2])
    assert "No space left" in err and "previous index stays live" in err
