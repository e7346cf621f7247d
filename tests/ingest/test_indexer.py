from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.core.errors import KBError
from rag.service.pipeline import Pipeline
from tests.fakes import HashEmbedder
from tests.helpers import write_corpus


def test_index_then_rerun_embeds_nothing(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    report = fake_pipeline.index([docs])
    assert (report.files_seen, report.indexed, report.unchanged) == (3, 3, 0)
    assert report.chunks_added > 0 and report.ok
    embedded = fake_pipeline.embedder.embedded  # type: ignore[attr-defined]
    snap = fake_pipeline.kb.current_id()
    again = fake_pipeline.index([docs])
    assert (again.indexed, again.unchanged, again.chunks_added) == (0, 3, 0)
    # Nothing re-embedded: one probe only, checking the embedder reproduces the KB's vectors.
    assert fake_pipeline.embedder.embedded == embedded + 1  # type: ignore[attr-defined]
    assert fake_pipeline.kb.current_id() == snap  # nothing to publish


def test_files_read_by_older_loaders_are_read_again(fake_pipeline: Pipeline,
                                                    tmp_path: Path) -> None:
    """After an upgrade that changes what files yield (OCR, cleaning), the next run reads every
    file again; chunks whose text is the same are not embedded again."""
    import sqlite3

    docs = write_corpus(tmp_path / "docs")
    fake_pipeline.index([docs])
    embedded = fake_pipeline.embedder.embedded  # type: ignore[attr-defined]
    with sqlite3.connect(fake_pipeline.kb.store.path) as db:  # digests as loader version 1 wrote them
        db.execute("UPDATE chunks SET file_sha = substr(file_sha, 3)")
        db.execute("UPDATE files SET sha256 = substr(sha256, 3)")
    again = fake_pipeline.index([docs])
    assert (again.indexed, again.unchanged, again.chunks_added) == (3, 0, 0)
    assert fake_pipeline.embedder.embedded == embedded + 1  # type: ignore[attr-defined]
    assert fake_pipeline.index([docs]).unchanged == 3


def test_touched_but_identical_file_is_unchanged(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    fake_pipeline.index([docs])
    os.utime(docs / "dogs.txt", ns=(1, 1))
    report = fake_pipeline.index([docs])
    assert report.unchanged == 3


def test_changed_and_deleted_files(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    fake_pipeline.index([docs])
    (docs / "dogs.txt").write_text("Dogs bark at the mailman. Wolves howl at the moon.\n")
    (docs / "cats.md").unlink()
    report = fake_pipeline.index([docs])
    assert (report.indexed, report.removed, report.unchanged) == (1, 1, 1)
    assert report.chunks_removed >= 2 and report.chunks_added >= 1
    hits = fake_pipeline.search("wolves howl moon", mode="bm25").hits
    assert "Wolves" in hits[0].chunk.text
    assert not fake_pipeline.search("cats purr", mode="bm25").hits
    stats = fake_pipeline.kb.store.stats()
    assert stats["files"] == 2
    # garbage collection removed the old chunks and their vectors
    db = fake_pipeline.kb.store.db
    assert db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == stats["chunks"]


def test_only_files_under_given_roots_are_removed(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    a = write_corpus(tmp_path / "a")
    b = tmp_path / "b"
    b.mkdir()
    (b / "note.txt").write_text("Separate note about rivers.")
    fake_pipeline.index([a, b])
    report = fake_pipeline.index([a])
    assert report.removed == 0
    assert fake_pipeline.search("rivers", mode="bm25").hits


def test_bad_files_are_reported_and_the_rest_indexed(
    fake_pipeline: Pipeline, tmp_path: Path
) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\ngarbage")
    report = fake_pipeline.index([docs, tmp_path / "missing-dir"])
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert reasons["empty.txt"].startswith("empty file")
    assert reasons["image.png"].startswith("unreadable image")
    assert "PDF" in reasons["broken.pdf"]
    assert reasons["missing-dir"] == "no such file or directory"
    assert report.indexed == 3 and report.ok


def test_failed_update_keeps_previous_version(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    fake_pipeline.index([docs])
    (docs / "dogs.txt").write_bytes(b"")
    report = fake_pipeline.index([docs])
    assert "previous version kept" in report.failed[0].reason
    assert fake_pipeline.search("mailman", mode="bm25").hits


def test_nothing_indexable_is_not_ok(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    (tmp_path / "e.txt").write_bytes(b"")
    assert not fake_pipeline.index([tmp_path / "e.txt"]).ok
    with pytest.raises(KBError, match="nothing-here: no such file"):
        fake_pipeline.index([tmp_path / "nothing-here"])


def test_other_model_is_refused_then_rebuild(settings, tmp_path: Path) -> None:  # noqa: ANN001
    docs = write_corpus(tmp_path / "docs")
    Pipeline(settings, "kb", embedder=HashEmbedder(name="m1")).index([docs])
    other = Pipeline(settings, "kb", embedder=HashEmbedder(name="m2", dim=32))
    with pytest.raises(KBError, match="m1"):
        other.index([docs])
    with pytest.raises(KBError, match="--rebuild"):
        other.search("dogs")
    report = other.index([docs], rebuild=True)
    assert report.indexed == 3
    assert other.search("dogs bark", mode="dense").hits


def test_second_writer_is_refused(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    with fake_pipeline.kb.writer(), pytest.raises(KBError, match="another job"):
        fake_pipeline.index([docs])


def test_missing_kb_and_bad_name(settings) -> None:  # noqa: ANN001
    with pytest.raises(KBError, match="does not exist"):
        Pipeline(settings, "nope", embedder=HashEmbedder()).search("x")
    for bad in ("../etc", "a\n", "a\nb"):  # a regex's $ would let a trailing newline in
        with pytest.raises(KBError, match="invalid knowledge base name"):
            Pipeline(settings, bad, embedder=HashEmbedder())


def test_hnsw_and_ivf_indexes(settings, tmp_path: Path) -> None:  # noqa: ANN001
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(40):
        (docs / f"f{i}.txt").write_text(f"Topic {i} words alpha{i} beta{i}. " * 3)
    for kind in ("hnsw", "ivf"):
        s = settings.model_copy(update={"index": settings.index.model_copy(update={"kind": kind})})
        p = Pipeline(s, f"kb-{kind}", embedder=HashEmbedder())
        p.index([docs])
        assert p.search("alpha7 beta7", mode="dense", k=3).hits[0].chunk.text.startswith("Topic 7")


def test_the_next_file_parses_while_the_previous_one_embeds(
        fake_pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser child is handed file n+1 before file n is embedded; a file that fails to
    parse in between does not stop the others."""
    from ingest.parsing import ParseWorker

    docs = write_corpus(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    events: list[str] = []
    submit = ParseWorker.submit

    def recorded(self: ParseWorker, path: Path, data: bytes) -> None:
        events.append(f"parse {path.name}")
        submit(self, path, data)

    monkeypatch.setattr(ParseWorker, "submit", recorded)
    embedder = fake_pipeline.embedder
    embed = embedder.embed_documents
    monkeypatch.setattr(embedder, "embed_documents",
                        lambda texts: events.append(f"embed {texts[0].split()[0]}") or embed(texts))
    report = fake_pipeline.index([docs])
    assert report.indexed == 3 and [f.path for f in report.failed] == [str(docs / "broken.pdf")]
    # Each file goes to the parser before the one before it is embedded.
    assert events == ["parse broken.pdf", "parse cats.md", "parse dogs.txt", "embed Cats",
                      "parse fish.html", "embed dogs", "embed fish"]


def test_ragignore_keeps_files_out_and_takes_out_what_it_newly_names(
        fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "notes" / "drafts").mkdir(parents=True)
    (docs / "build").mkdir()
    (docs / "guide.md").write_text("The guide talks about otters.")
    (docs / "results.md").write_text("Results mention herons.")
    (docs / "build" / "page.html").write_text("<p>Built page about pelicans.</p>")
    (docs / "notes" / "idea.txt").write_text("An idea about walruses.")
    (docs / "notes" / "drafts" / "draft.txt").write_text("A draft about beavers.")
    (docs / ".ragignore").write_text("# build output\nbuild/\n")
    (docs / "notes" / ".ragignore").write_text("drafts/\n")  # relative to its own folder
    report = fake_pipeline.index([docs])
    assert report.indexed == 3 and not report.failed
    for word, found in (("otters", True), ("herons", True), ("walruses", True),
                        ("pelicans", False), ("beavers", False)):
        assert bool(fake_pipeline.search(word, mode="bm25").hits) is found, word
    (docs / ".ragignore").write_text("build/\n*.md\n!guide.md\n")
    report = fake_pipeline.index([docs])
    assert report.removed == 1
    assert not fake_pipeline.search("herons", mode="bm25").hits
    assert fake_pipeline.search("otters", mode="bm25").hits


def test_a_folder_given_by_another_path_is_the_same_files(fake_pipeline: Pipeline,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag index ../docs` and `rag index /abs/docs` record one copy of each file."""
    docs = write_corpus(tmp_path / "docs")
    (tmp_path / "work").mkdir()
    first = fake_pipeline.index([docs])
    monkeypatch.chdir(tmp_path / "work")
    again = fake_pipeline.index([Path("../docs/./")])
    assert again.indexed == 0 and again.unchanged == first.indexed
    recorded = [f.path for f in fake_pipeline.documents()]
    assert len(recorded) == first.indexed and all(p.startswith(f"{docs}/") for p in recorded)


def test_files_recorded_with_dots_by_an_older_rag_are_replaced_not_kept_twice(
        fake_pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = write_corpus(tmp_path / "docs")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with monkeypatch.context() as old:  # paths as rag recorded them before it normalised them
        old.setattr("ingest.indexer.absolute", lambda p: Path(p).expanduser().absolute())
        first = fake_pipeline.index([Path("../docs")])
    assert all("/../" in f.path for f in fake_pipeline.documents())
    again = fake_pipeline.index([Path("../docs")])
    assert again.removed == first.indexed
    recorded = [f.path for f in fake_pipeline.documents()]
    assert len(recorded) == first.indexed and all(p.startswith(f"{docs}/") for p in recorded)
