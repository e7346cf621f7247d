"""No silent loss: re-indexing in any order gives the KB a fresh index would; bad roots, special
files and runaway inputs are reported, never deleted from or blocking the KB."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import TokenChunker
from ingest.markup import HtmlLoader
from rag.core.errors import KBError
from rag.service.pipeline import Pipeline
from rag.storage.kb import KnowledgeBase
from tests.documents import text_pdf
from tests.fakes import HashEmbedder

WORDS = ("river stone light paper music garden winter copper signal forest harbor pencil "
         "thunder marble violet canyon").split()


def kb_chunks(pipeline: Pipeline) -> set[tuple[object, ...]]:
    """Every chunk the live snapshot serves, with its provenance."""
    snap = pipeline.kb.snapshot()
    chunks = snap.store.chunks_by_id(snap.ids)
    assert len(chunks) == len(set(snap.ids)), "the live snapshot has ids its store lacks"
    return {(c.source, c.doc_key, c.title, c.page, c.section, c.char_start, c.char_end, c.text)
            for c in chunks.values()}


def sentences(rng: random.Random, marker: str, n: int) -> str:
    return " ".join(f"The {marker} {rng.choice(WORDS)} {rng.choice(WORDS)} item {i}."
                    for i in range(n))


def read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")


class Folder:
    """A folder of text, HTML and BEIR files changed by random operations."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng, self.next = root, rng, 0
        root.mkdir()
        for _ in range(4):
            self.create()

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def create(self) -> None:
        marker = f"marker{self.next:03}"
        self.next += 1
        kind = self.rng.choice(["txt", "html", "jsonl"])
        path = self.root / f"{marker}.{kind}"
        if kind == "txt":
            path.write_text(sentences(self.rng, marker, 6) + " Café.", encoding="utf-8")
        elif kind == "html":
            path.write_text(self._html(marker, sentences(self.rng, marker, 4), 1))
        else:
            path.write_text("".join(self._row(marker, i) for i in range(3)))

    def _html(self, marker: str, body: str, version: int) -> str:
        return (f"<html><head><title>{marker}</title><script>var v={version}</script></head>"
                f"<body><h1>{marker}</h1><p>{body}</p></body></html>")

    def _row(self, marker: str, i: int) -> str:
        return json.dumps({"_id": f"{marker}-{i}", "title": marker,
                           "text": sentences(self.rng, marker, 2)}) + "\n"

    def same_text_new_bytes(self, path: Path) -> None:
        if path.suffix == ".html":  # only the script changes: the extracted text does not
            html = path.read_text()
            version = int(html.split("var v=")[1].split("<")[0]) + 1
            path.write_text(html.replace(html.split("<script>")[1].split("</script>")[0],
                                         f"var v={version}"))
        elif path.suffix == ".txt":  # re-encoded: same text, other bytes
            encoding = "cp1252" if b"\xc3" in path.read_bytes() else "utf-8"
            path.write_bytes(read(path).encode(encoding))
        else:  # an extra blank line: BEIR rows unchanged
            path.write_text(path.read_text() + "\n")

    def operate(self) -> str:
        files = self.files()
        op = self.rng.choice(["same_text", "same_text", "new_text", "rename", "append",
                              "truncate", "delete", "create"])
        if op == "create" or not files:
            self.create()
            return "create"
        path = self.rng.choice(files)
        marker = path.stem.split(".")[0]
        if op == "same_text":
            self.same_text_new_bytes(path)
        elif op == "new_text":
            text = sentences(self.rng, marker, 5)
            if path.suffix == ".html":
                path.write_text(self._html(marker, text, 1))
            elif path.suffix == ".jsonl":
                path.write_text(self._row(marker, 0) + self._row(marker, 7))
            else:
                path.write_text(text)
        elif op == "rename":
            sub = self.root / self.rng.choice(["", "a", "b"])
            sub.mkdir(exist_ok=True)
            path.rename(sub / path.name)
        elif op == "append":
            if path.suffix == ".jsonl":
                lines = path.read_text().splitlines()
                path.write_text(path.read_text() + self._row(marker, len(lines) + 10))
            elif path.suffix == ".txt":
                path.write_text(read(path) + " " + sentences(self.rng, marker, 1))
            else:
                self.same_text_new_bytes(path)
        elif op == "truncate":
            if path.suffix == ".jsonl" and path.read_text().count("\n") > 1:
                path.write_text(path.read_text().splitlines(keepends=True)[0])
            elif path.suffix == ".txt":
                path.write_text(read(path)[: len(read(path)) // 2] or marker)
            else:
                self.same_text_new_bytes(path)
        else:
            path.unlink()
        return f"{op} {path.name}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reindexing_in_any_order_equals_a_fresh_index(settings, tmp_path: Path, seed: int) -> None:  # noqa: ANN001
    rng = random.Random(seed)
    folder = Folder(tmp_path / "docs", rng)
    live = Pipeline(settings, "live", embedder=HashEmbedder())
    history = []
    for run in range(6):
        history += [folder.operate() for _ in range(rng.randint(1, 3))]
        report = live.index([folder.root])
        assert not report.failed, (history, report.failed)
        fresh = Pipeline(settings, f"fresh{run}", embedder=HashEmbedder())
        fresh.index([folder.root])
        assert kb_chunks(live) == kb_chunks(fresh), history
        for path in folder.files():  # search finds every file by its marker word
            marker = path.stem.split(".")[0]
            hits = live.search(marker, k=3, mode="bm25").hits
            assert hits and hits[0].chunk.source == str(path), (marker, history)
        fresh.kb.close()


def test_same_text_new_bytes_keeps_the_file_searchable(fake_pipeline: Pipeline,
                                                       tmp_path: Path) -> None:
    """The reported bug: only a <script> changes; the page's text must stay in the index."""
    page = tmp_path / "docs" / "page.html"
    page.parent.mkdir()
    html = ("<html><head><script>var v={}</script></head><body><p>Quokkas smile at visitors."
            "</p></body></html>")
    page.write_text(html.format(1))
    fake_pipeline.index([page.parent])
    page.write_text(html.format(2))
    assert fake_pipeline.index([page.parent]).indexed == 1
    assert fake_pipeline.search("quokkas", mode="bm25").hits
    # BEIR: appending a row keeps every older row.
    corpus = tmp_path / "docs" / "corpus.jsonl"
    rows = [{"_id": str(i), "title": "", "text": f"Row {i} about wombat{i}."} for i in range(3)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    fake_pipeline.index([page.parent])
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fake_pipeline.index([page.parent])
    for i in range(3):
        assert fake_pipeline.search(f"wombat{i}", mode="bm25").hits, i


def test_kb_broken_by_the_old_version_is_repaired(settings, tmp_path: Path) -> None:  # noqa: ANN001
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Axolotls regrow limbs.")
    (docs / "b.txt").write_text("Bison roam the plains.")
    Pipeline(settings, "old", embedder=HashEmbedder()).index([docs])
    # What version 1 left behind: chunks kept under the file's previous hash, no schema mark.
    db = sqlite3.connect(settings.kb_root / "old" / "kb.sqlite")
    with db:
        db.execute("UPDATE chunks SET file_sha = 'previous' WHERE path LIKE '%a.txt'")
        db.execute("DELETE FROM meta WHERE key = 'schema'")
    db.close()
    pipeline = Pipeline(settings, "old", embedder=HashEmbedder())
    result = pipeline.search("bison")
    assert any("re-index" in w for w in result.warnings)
    report = pipeline.index([docs])
    assert report.indexed == 1 and any("older rag version" in w.reason for w in report.warnings)
    assert pipeline.search("axolotls", mode="bm25").hits
    assert not pipeline.search("bison").warnings


def write_docs(folder: Path, word: str = "apple") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (folder / f"doc{i}.txt").write_text(f"The {word} number {i} is here. More {word} text.")
    return folder


def test_missing_or_unmounted_root_deletes_nothing(fake_pipeline: Pipeline,
                                                    tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    other = write_docs(tmp_path / "other", "pear")
    fake_pipeline.index([docs, other])
    before = kb_chunks(fake_pipeline)
    for f in docs.iterdir():  # an unmounted share: the mount point is an empty folder
        f.unlink()
    report = fake_pipeline.index([docs, other])
    assert report.removed == 0 and kb_chunks(fake_pipeline) == before
    assert any("not mounted" in f.reason and "--prune" in f.reason for f in report.failed)
    docs.rmdir()
    with pytest.raises(KBError, match="no such file"):
        fake_pipeline.index([docs])
    assert kb_chunks(fake_pipeline) == before
    report = fake_pipeline.index([docs, other], prune=True)
    assert report.removed == 3 and not fake_pipeline.search("apple", mode="bm25").hits


def test_rebuild_of_a_mistyped_path_keeps_the_kb(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    fake_pipeline.index([docs])
    before = kb_chunks(fake_pipeline)
    with pytest.raises(KBError, match="not changed"):
        fake_pipeline.index([tmp_path / "dcos"], rebuild=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "e.txt").write_text("")
    with pytest.raises(KBError, match="previous knowledge base is kept"):
        fake_pipeline.index([tmp_path / "empty"], rebuild=True)
    assert kb_chunks(fake_pipeline) == before
    report = fake_pipeline.index([write_docs(tmp_path / "new", "plum")], rebuild=True)
    assert report.indexed == 3
    assert fake_pipeline.search("plum", mode="bm25").hits
    assert not fake_pipeline.search("apple", mode="bm25").hits


def test_only_regular_files_inside_the_root_are_read(fake_pipeline: Pipeline,
                                                      tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    os.mkfifo(docs / "pipe.txt")  # reading it would block forever
    secret = tmp_path / "secret.txt"
    secret.write_text("The password is swordfish.")
    (docs / "leak.txt").symlink_to(secret)
    (docs / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    (docs / "inside.txt").symlink_to(docs / "doc0.txt")
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(fake_pipeline.index([docs])))
    worker.start()
    worker.join(timeout=120)
    assert done, "indexing blocked on a named pipe"
    report = done[0]
    skipped = {Path(f.path).name: f.reason for f in report.skipped}  # type: ignore[attr-defined]
    assert "named pipe" in skipped["pipe.txt"] and "outside" in skipped["leak.txt"]
    assert report.indexed == 4  # type: ignore[attr-defined]
    assert not fake_pipeline.search("swordfish", mode="bm25").hits


def test_per_file_limits_fail_the_file_not_the_job(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from rag.core.config import load_settings

    docs = write_docs(tmp_path / "docs")
    (docs / "big.txt").write_text("word " * 300_000)  # 1.5 MB
    monkeypatch.setenv("RAG_INGEST__MAX_FILE_MB", "1")
    pipeline = Pipeline(load_settings(), "lim", embedder=HashEmbedder())
    report = pipeline.index([docs])
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert "ingest.max_file_mb" in reasons["big.txt"] and report.indexed == 3
    # A parser that takes too long is stopped (its CPU time) and reported. The text of 20,000 PDF
    # pages (the type comes from the content) takes seconds on any machine, so the parse cannot
    # finish while the job is still busy with the file before it, unseen by the limit.
    monkeypatch.delenv("RAG_INGEST__MAX_FILE_MB")
    monkeypatch.setenv("RAG_INGEST__PARSE_TIMEOUT_S", "0.001")
    (docs / "doc0.txt").write_bytes(text_pdf([f"Changed page {i}." for i in range(20_000)]))
    report = Pipeline(load_settings(), "lim", embedder=HashEmbedder()).index([docs])
    assert "ingest.parse_timeout_s" in {f.path: f.reason for f in report.failed}[str(docs / "doc0.txt")]
    assert pipeline.search("apple", mode="bm25").hits  # previous version kept


def test_cancel_leaves_the_live_snapshot(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    from rag.core.errors import Cancelled

    docs = write_docs(tmp_path / "docs")
    fake_pipeline.index([docs])
    live = fake_pipeline.kb.current_id()
    write_docs(docs, "banana")
    cancel = threading.Event()

    class CancelAfterOne:
        def start(self, files: int) -> None: ...
        def chunks_done(self, count: int) -> None: ...
        def file_done(self, path: str) -> None:
            cancel.set()

    with pytest.raises(Cancelled):
        fake_pipeline.index([docs], progress=CancelAfterOne(), cancel=cancel)
    assert fake_pipeline.kb.current_id() == live
    assert fake_pipeline.search("apple", mode="bm25").hits
    fake_pipeline.index([docs])
    assert not fake_pipeline.search("apple", mode="bm25").hits


def test_one_long_line_is_chunked_in_bounded_pieces() -> None:
    from rag.core.types import Document, Section

    embedder = HashEmbedder(max_tokens=40)
    calls: list[int] = []
    count = embedder.count_tokens
    embedder.count_tokens = lambda texts: (calls.append(max(map(len, texts), default=0)),  # type: ignore[method-assign]
                                           count(texts))[1]
    text = " ".join(f"w{i}" for i in range(200_000))  # 1.3 MB, no sentence end
    doc = Document("long.txt", "", (Section(text),), "long.txt", "text")
    chunks = TokenChunker(embedder, prepend_title=False).chunk(doc)
    assert max(calls) <= 40 * 12 + 100  # the tokenizer never sees the whole line
    assert all(len(c.text.split()) <= 40 for c in chunks)
    assert chunks[0].text.startswith("w0 ") and chunks[-1].text.endswith("w199999")


def test_html_heading_offsets(tmp_path: Path) -> None:
    body = "".join(f"<h2>Head {i}</h2><p>Text {i}.</p>" for i in range(300))
    loaded = HtmlLoader().load(tmp_path / "p.html", f"<html><body>{body}</body></html>".encode())
    sections = loaded.documents[0].sections
    assert [s.title for s in sections[:2]] == ["Head 0", "Head 1"]
    assert sections[-1].title == "Head 299" and "Text 299." in sections[-1].text


def test_kb_folder_after_rebuild_has_one_store(fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    fake_pipeline.index([docs])
    fake_pipeline.index([docs], rebuild=True)
    reader = KnowledgeBase("test", fake_pipeline.settings)
    assert reader.store.path.name != "kb.sqlite"  # the rebuilt store
    assert len(list(reader.path.glob("kb*.sqlite"))) == 1
    assert fake_pipeline.search("apple", mode="bm25").hits


class OtherWeights(HashEmbedder):
    """Same name and size as HashEmbedder, other vectors: new weights behind an old name."""

    def _vec(self, text: str):  # noqa: ANN202
        return super()._vec(text[::-1] + " shifted")


def test_compatibility_check_sees_weights_and_prefix_family(settings, tmp_path: Path) -> None:  # noqa: ANN001
    docs = write_docs(tmp_path / "docs")
    Pipeline(settings, "kb", embedder=HashEmbedder()).index([docs])
    with pytest.raises(KBError, match="does not reproduce"):
        Pipeline(settings, "kb", embedder=OtherWeights()).search("apple")
    with_family = HashEmbedder()
    with_family.family = "e5"  # type: ignore[attr-defined]
    with pytest.raises(KBError, match="family"):
        Pipeline(settings, "kb", embedder=with_family).index([docs])
    assert Pipeline(settings, "kb", embedder=HashEmbedder()).search("apple").hits


class Noisy(HashEmbedder):
    """The same model's vectors in another number format: close to, not equal to, the KB's."""

    def __init__(self, dtype: str, noise: float) -> None:
        super().__init__()
        self.dtype, self.noise = dtype, noise

    def _vec(self, text: str):  # noqa: ANN202
        v = super()._vec(text) + self.noise * np.random.default_rng(len(text)).normal(size=self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)


def test_number_formats_of_one_model_may_share_a_kb_where_measured_safe(settings, tmp_path: Path) -> None:  # noqa: ANN001, E501
    docs = write_docs(tmp_path / "docs")
    Pipeline(settings, "kb", embedder=Noisy("float32", 0.0)).index([docs])
    assert json.loads(KnowledgeBase("kb", settings).store.get_meta("signature"))["vectors"] == "float32"
    # bf16 vectors a little off fp32's (cosine about 0.98): measured safe to mix.
    assert Pipeline(settings, "kb", embedder=Noisy("bfloat16", 0.02)).search("apple").hits
    # int8 is not: refused, and the reason names both formats and what to do.
    with pytest.raises(KBError, match="vectors: KB has 'float32', config has 'int8'.*dtype"):
        Pipeline(settings, "kb", embedder=Noisy("int8", 0.0)).search("apple")
    # Far-off vectors under a mixable format are another model, not another format.
    with pytest.raises(KBError, match="does not reproduce"):
        Pipeline(settings, "kb", embedder=Noisy("bfloat16", 0.5)).search("apple")


def test_a_script_without_main_guard_can_index(tmp_path: Path) -> None:
    """The parser child never re-imports the caller's script (as multiprocessing's spawn would)."""
    import subprocess
    import sys

    docs = write_docs(tmp_path / "docs")
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\nfrom rag.core.config import load_settings\n"
        "from rag.service.pipeline import Pipeline\nfrom tests.fakes import HashEmbedder\n"
        f"r = Pipeline(load_settings(), 's', embedder=HashEmbedder()).index([Path({str(docs)!r})])\n"
        "print('indexed', r.indexed)\n")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.strip() == "indexed 3", out.stderr[-2000:]


def test_undecodable_names_and_lone_surrogates_fail_alone(fake_pipeline: Pipeline,
                                                          tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    with open(docs.as_posix().encode() + b"/bad\xff\xfename.txt", "wb") as handle:
        handle.write(b"A file whose name is not UTF-8.")
    (docs / "c.jsonl").write_text(json.dumps({"_id": "x\ud800", "title": "T",
                                              "text": "A lone \ud800 surrogate in a row."}) + "\n")
    report = fake_pipeline.index([docs])
    assert report.indexed == 4 and not report.failed
    assert any("not valid UTF-8" in f.reason for f in report.skipped)
    assert fake_pipeline.search("surrogate", mode="bm25").hits


def test_a_parser_over_its_memory_limit_fails_the_file_alone(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from rag.core.config import load_settings

    docs = write_docs(tmp_path / "docs")
    (docs / "huge.txt").write_bytes(b"\xe9word " * 12_000_000)  # 72 MB of cp1252: decoded 4x
    monkeypatch.setenv("RAG_INGEST__PARSE_MEMORY_MB", "300")
    report = Pipeline(load_settings(), "mem", embedder=HashEmbedder()).index([docs])
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert "parse_memory_mb" in reasons["huge.txt"] and report.indexed == 3
