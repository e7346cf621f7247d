"""Hostile inputs, round 2: files swapped for links mid-job, decompression bombs, runaway parses,
names that carry markup or terminal escapes. Each test drives the real code path (the indexer,
the CLI, the app's functions) with a file an attacker could plant."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from pathlib import Path

import psutil
import pytest

from rag.service.pipeline import Pipeline
from tests.documents import text_pdf
from tests.fakes import HashEmbedder


def children_named(word: str) -> list[psutil.Process]:
    """This process's descendants whose command line holds ``word`` (gone ones skipped)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if word in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def parser_children() -> list[psutil.Process]:
    return children_named("ingest.parsing")


def swap_when_parsing(target: Path, outside: Path, done: threading.Event) -> threading.Thread:
    """Replace ``target`` by a link to ``outside`` as soon as the parser child is at work on an
    earlier file (the job scanned the folder before)."""
    def swap() -> None:
        deadline = time.monotonic() + 120
        while not parser_children() and time.monotonic() < deadline:
            time.sleep(0.005)
        target.unlink()
        target.symlink_to(outside)
        done.set()

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    return thread


def test_a_file_swapped_for_a_link_mid_job_is_not_read_and_its_chunks_go(
        fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    secret = tmp_path / "secret.md"
    secret.write_text("The launch code is swordfish.")
    # Parsed first, slowly enough that the swap lands while the parser works on it.
    (docs / "a.pdf").write_bytes(text_pdf([f"Page {i} of alpaca notes." for i in range(400)]))
    (docs / "b.txt").write_text("Bison graze on the plains.")
    (docs / "z.md").write_text("# Zebra\n\nZebras have stripes.")
    fake_pipeline.index([docs])
    assert fake_pipeline.search("zebras stripes", mode="bm25").hits
    (docs / "a.pdf").write_bytes(text_pdf([f"Page {i} of llama notes." for i in range(400)]))
    (docs / "z.md").write_text("# Zebra\n\nZebras have black stripes.")  # changed: read again

    swapped = threading.Event()
    swap_when_parsing(docs / "z.md", secret, swapped).join(0)
    report = fake_pipeline.index([docs])
    assert swapped.is_set()
    reasons = {Path(f.path).name: f.reason for f in report.skipped}
    assert "link" in reasons["z.md"], report
    assert not fake_pipeline.search("swordfish launch code", mode="bm25").hits
    assert not fake_pipeline.search("zebras stripes", mode="bm25").hits  # gone with the file
    assert fake_pipeline.search("llama notes", mode="bm25").hits  # the rest was indexed
    # The next run sees the link at scan time: skipped again, nothing from outside.
    report = fake_pipeline.index([docs])
    assert "outside" in {Path(f.path).name: f.reason for f in report.skipped}["z.md"]
    assert not fake_pipeline.search("swordfish", mode="bm25").hits


def test_a_second_run_removes_files_that_became_links_or_special_files(
        fake_pipeline: Pipeline, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    secret = tmp_path / "secret.md"
    secret.write_text("Outside text about swordfish.")
    (docs / "keep.txt").write_text("Kept text about otters.")
    (docs / "link.txt").write_text("Inside text about herons.")
    (docs / "pipe.txt").write_text("Inside text about pelicans.")
    fake_pipeline.index([docs])
    (docs / "link.txt").unlink()
    (docs / "link.txt").symlink_to(secret)
    (docs / "pipe.txt").unlink()
    os.mkfifo(docs / "pipe.txt")
    report = fake_pipeline.index([docs])
    assert report.removed == 2 and {Path(f.path).name for f in report.skipped} == {
        "link.txt", "pipe.txt"}
    for word in ("herons", "pelicans", "swordfish"):
        assert not fake_pipeline.search(word, mode="bm25").hits, word
    assert fake_pipeline.search("otters", mode="bm25").hits


def test_a_folder_swapped_for_a_link_is_refused_by_the_descriptor_check(tmp_path: Path) -> None:
    from ingest.reading import Refused, read_regular
    from rag.core.errors import LoadError

    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "f.txt").write_text("outside")
    (docs / "sub" / "f.txt").write_text("inside")
    root = os.path.realpath(docs)
    assert read_regular(docs / "sub" / "f.txt", 2**20, root)[1] == b"inside"
    (docs / "sub" / "f.txt").unlink()
    (docs / "sub").rmdir()
    (docs / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Refused, match="outside"):
        read_regular(docs / "sub" / "f.txt", 2**20, root)
    os.mkfifo(docs / "fifo")
    with pytest.raises(Refused, match="named pipe"):
        read_regular(docs / "fifo", 2**20, root)
    (docs / "big.txt").write_bytes(b"x" * 2048)
    with pytest.raises(LoadError, match="max_file_mb") as caught:
        read_regular(docs / "big.txt", 1024, root)
    assert not isinstance(caught.value, Refused)  # too big: the previous version is kept


def test_the_apps_index_roots_never_read_through_a_link(settings, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from rag.core.config import load_settings
    from rag.service.engine import Engine
    from tests.fakes import ScriptedGenerator

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("Outside text about swordfish.")
    (allowed / "note.txt").write_text("Inside text about herons.")
    monkeypatch.setenv("RAG_UI__INDEX_ROOTS", f'["{allowed}"]')
    engine = Engine(load_settings(), embedder=HashEmbedder(), index_embedder=HashEmbedder(),
                    generator=ScriptedGenerator([]))
    job = engine.index_folder("team", str(allowed))
    while job.running:
        time.sleep(0.05)
    assert engine.pipeline("team").search("herons", mode="bm25").hits
    (allowed / "note.txt").unlink()
    (allowed / "note.txt").symlink_to(secret)
    job = engine.index_folder("team", str(allowed))
    while job.running:
        time.sleep(0.05)
    assert job.report is not None and job.report.removed == 1, job.error
    assert not engine.pipeline("team").search("herons", mode="bm25").hits
    assert not engine.pipeline("team").search("swordfish", mode="bm25").hits


class PeakParserMemory:
    """The highest RSS any parser child reaches while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakParserMemory:
        self.peak, self._stop = 0, threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                for child in parser_children():
                    try:
                        self.peak = max(self.peak, child.memory_info().rss)
                    except psutil.Error:
                        pass
                time.sleep(0.02)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


BOMB_LIMIT = 1024 * 2**20  # the parser's own share of the 1.5 GB a whole `rag index` may use


@pytest.mark.parametrize("name, make, reason", [
    ("frames.gif", "gif_frame_bomb", "megapixels in all"),
    ("bomb.docx", "docx_zip_bomb", "ingest.max_unzipped_mb"),
    ("pages.pdf", "many_pages_pdf", "ingest.max_pages"),
])
def test_bombs_fail_early_naming_their_limit(fake_pipeline: Pipeline, tmp_path: Path, name: str,
                                             make: str, reason: str) -> None:
    from tests import hostile

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / name).write_bytes(getattr(hostile, make)())
    (docs / "ok.txt").write_text("Herons wade in shallow water.")
    with PeakParserMemory() as memory:
        report = fake_pipeline.index([docs])
    assert reason in {Path(f.path).name: f.reason for f in report.failed}[name]
    assert memory.peak < BOMB_LIMIT, f"{memory.peak / 2**20:.0f} MB"
    assert report.indexed == 1 and fake_pipeline.search("herons", mode="bm25").hits


def test_a_file_whose_text_is_over_the_limit_fails_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few KB of spreadsheet that repeats one long string in every cell: refused while its
    rows are read, naming ingest.max_text_mb; any other kind is checked once parsed."""
    from rag.core.config import load_settings
    from tests import hostile

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "strings.xlsx").write_bytes(hostile.shared_string_xlsx())
    (docs / "long.md").write_text("Long text. " * 300_000)  # 3.3 MB
    (docs / "ok.txt").write_text("Herons wade in shallow water.")
    monkeypatch.setenv("RAG_INGEST__MAX_TEXT_MB", "2")
    report = Pipeline(load_settings(), "text", embedder=HashEmbedder()).index([docs])
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert len((docs / "strings.xlsx").read_bytes()) < 100_000
    assert "ingest.max_text_mb" in reasons["strings.xlsx"] and "ingest.max_text_mb" in reasons[
        "long.md"]
    assert report.indexed == 1


def test_a_lying_zip_is_refused_without_inflating_it() -> None:
    """Declared sizes can lie: zipfile stops inflating at the declared size and the CRC check
    fails; either way the package is refused before its library opens it."""
    import io
    import zipfile

    from ingest.office import check_package
    from rag.core.errors import LoadError

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("word/document.xml", b" " * (8 * 2**20))
    data = bytearray(out.getvalue())
    central = data.rindex(b"PK\x01\x02")  # the central directory's declared size: 1 KB
    data[central + 24:central + 28] = (1024).to_bytes(4, "little")
    local = data.index(b"PK\x03\x04")
    data[local + 22:local + 26] = (1024).to_bytes(4, "little")
    with pytest.raises(LoadError, match="corrupt"):
        check_package(bytes(data), "DOCX", 4)
    with pytest.raises(LoadError, match="ingest.max_unzipped_mb"):
        check_package(out.getvalue(), "DOCX", 4)


def test_deep_html_tables_and_thousands_of_headings_stay_linear(fake_pipeline: Pipeline,
                                                                tmp_path: Path) -> None:
    from ingest.markup import HtmlLoader
    from tests import hostile

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "nested.html").write_bytes(hostile.nested_tables_html())
    with PeakParserMemory() as memory:
        report = fake_pipeline.index([docs])
    assert report.indexed == 1 and memory.peak < BOMB_LIMIT, (report, memory.peak)
    assert fake_pipeline.search("deep", mode="bm25").hits

    def cpu(count: int) -> float:
        data = hostile.many_headings_html(count)
        gc.collect()
        gc.disable()  # the suite's heap would make collections weigh on the larger run
        try:
            started = time.process_time()
            loaded = HtmlLoader().load(tmp_path / "h.html", data)
            elapsed = time.process_time() - started
        finally:
            gc.enable()
        assert len(loaded.documents[0].sections) == count
        return elapsed

    cpu(500)  # warm-up
    # Linear: eight times the headings cost about eight times as much (quadratic: 64 times).
    ratio = cpu(8000) / cpu(1000)
    assert ratio < 24, ratio


def test_each_file_has_a_total_cpu_budget_and_the_reason_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each table page is progress, so no per-page limit stops 200 ruled pages; the file's total
    budget does (its CPU time: a busy machine does not change the outcome)."""
    from rag.core.config import load_settings
    from tests import hostile

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ruled.pdf").write_bytes(hostile.ruled_pdf(200))  # 10 s of CPU here
    (docs / "ok.txt").write_text("Herons wade in shallow water.")
    monkeypatch.setenv("RAG_INGEST__FILE_BUDGET_S", "1")
    report = Pipeline(load_settings(), "budget", embedder=HashEmbedder()).index([docs])
    assert "ingest.file_budget_s" in {Path(f.path).name: f.reason for f in report.failed}[
        "ruled.pdf"]
    assert report.indexed == 1


@pytest.mark.skipif(not __import__("shutil").which("tesseract"), reason="tesseract not installed")
def test_a_many_frame_scan_stops_at_the_file_budget(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.config import load_settings
    from tests import hostile

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "frames.tiff").write_bytes(hostile.text_frames_tiff(21))
    monkeypatch.setenv("RAG_INGEST__FILE_BUDGET_S", "0.5")  # 21 OCR runs take several times that
    report = Pipeline(load_settings(), "frames", embedder=HashEmbedder()).index([docs])
    assert "ingest.file_budget_s" in report.failed[0].reason, report
    monkeypatch.setenv("RAG_INGEST__MAX_PAGES", "5")
    report = Pipeline(load_settings(), "frames", embedder=HashEmbedder()).index([docs])
    assert "21 frames, over the limit of 5 (ingest.max_pages)" in report.failed[0].reason


def test_the_app_runs_one_indexing_job_at_a_time_over_all_kbs(tmp_path: Path) -> None:
    from rag.service.jobs import JobRunner

    runner = JobRunner(max_running=1)
    release = threading.Event()
    order: list[str] = []

    def slow(paths, job):  # noqa: ANN001, ANN202
        order.append(job.kb)
        release.wait(10)
        from ingest.indexer import IndexReport
        return IndexReport()

    first = runner.start("a", [Path("x")], slow)
    second = runner.start("b", [Path("y")], slow)
    time.sleep(0.5)
    assert order == ["a"] and second.queued and second.running
    release.set()
    deadline = time.monotonic() + 10
    while (first.running or second.running) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert order == ["a", "b"] and not second.queued


def test_two_sessions_uploading_one_name_at_once(settings, tmp_path: Path) -> None:  # noqa: ANN001
    """Only the session whose job starts saves its file; the other is told so and nothing of its
    upload is written (before: it was told 'refused' while its file replaced the first's)."""
    from rag.service.engine import Engine
    from rag.service.uploads import Upload
    from tests.fakes import ScriptedGenerator

    engine = Engine(settings, embedder=HashEmbedder(delay=0.01),
                    index_embedder=HashEmbedder(delay=0.01), generator=ScriptedGenerator())
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def upload(who: str) -> None:
        barrier.wait()
        try:
            results[who] = engine.upload("kb", [Upload("report.md", f"# R\n\nWritten by {who}."
                                                                    .encode())])
        except RuntimeError as exc:
            results[who] = exc

    threads = [threading.Thread(target=upload, args=(w,)) for w in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refused = [w for w, r in results.items() if isinstance(r, RuntimeError)]
    started = [w for w, r in results.items() if not isinstance(r, RuntimeError)]
    assert len(refused) == 1 and len(started) == 1, results
    job = results[started[0]]
    while job.running:  # type: ignore[attr-defined]
        time.sleep(0.02)
    saved = (engine.upload_dir("kb") / "report.md").read_text()
    assert f"Written by {started[0]}." in saved
    assert engine.pipeline("kb").search(started[0], mode="bm25").hits


def test_a_pdf_over_the_page_limit_is_refused_before_any_text_is_extracted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdf

    from ingest.loaders import load_file
    from rag.core.errors import LoadError
    from rag.core.types import LoadOptions
    from tests import hostile

    extracted: list[int] = []
    real = pypdf.PageObject.extract_text
    monkeypatch.setattr(pypdf.PageObject, "extract_text",
                        lambda self, *a, **k: (extracted.append(1), real(self, *a, **k))[1])
    with pytest.raises(LoadError, match="10000 pages, over the limit of 5000"):
        load_file(Path("pages.pdf"), hostile.many_pages_pdf(), LoadOptions(max_pages=5000))
    assert not extracted


SECRET_URI = "s3://AKIAEXAMPLE:wJal/rXUtn+FEMI@a-bucket/rag-import?endpoint_override=127.0.0.1:9"


def test_a_bulk_store_secret_is_not_repeated_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow repeats the whole URI when a secret holds '/'; rag's error names the setting."""
    from rag.core.config import load_settings
    from rag.core.errors import MilvusUnavailable
    from rag.storage.milvus_index import bulk_import

    monkeypatch.setenv("RAG_INDEX__MILVUS_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("RAG_INDEX__MILVUS_BULK_STORE", SECRET_URI)
    load_settings()  # what every command does first: the secrets are known from here on
    with pytest.raises(MilvusUnavailable, match="index.milvus_bulk_store") as caught:
        bulk_import(None, "c", ["a"], ["t"], lambda ids: None, 1, SECRET_URI)  # type: ignore[arg-type]
    assert "wJal" not in str(caught.value) and "rXUtn" not in str(caught.value)


def test_credentials_are_masked_in_cli_errors_logs_and_the_apps_job_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import subprocess
    import sys

    from rag.core.redaction import RedactingFilter, redact, remember
    from rag.service.jobs import JobRunner

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Herons wade in shallow water.")
    env = {**os.environ, "RAG_INDEX__BACKEND": "milvus",
           "RAG_INDEX__MILVUS_URI": "http://admin:s3cr3t/pass@127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-m", "rag.cli.main", "index", str(docs)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "cannot reach Milvus at http://***@127.0.0.1:9" in out.stderr
    assert "s3cr3t" not in out.stdout + out.stderr, out.stderr[-500:]
    remember(["hunter2-api-key"])
    record = logging.LogRecord("rag", logging.ERROR, __file__, 1, "bulk store %s failed with "
                               "key %s", (SECRET_URI, "hunter2-api-key"), None)
    RedactingFilter().filter(record)
    assert "wJal" not in record.getMessage() and "hunter2" not in record.getMessage()
    assert redact("https://u:p4ss@host/x?token=abc123&n=1") == "https://***@host/x?token=***&n=1"

    def fails(paths, job):  # noqa: ANN001, ANN202
        raise RuntimeError(f"cannot open {SECRET_URI}")

    job = JobRunner().start("kb", [Path("x")], fails)
    while job.running:
        time.sleep(0.02)
    assert job.error is not None and "wJal" not in job.error and "***@a-bucket" in job.error


ESCAPES = "\x1b]0;pwned\x07\x1b[31mred\x1b[0m\u202egnp"


def test_terminal_escapes_in_names_are_shown_escaped(tmp_path: Path) -> None:
    """A file named with escape sequences (retitle the terminal, recolour it, reverse the text)
    prints them as visible text from rag index, the search table and rag ask's sources."""
    from click.testing import CliRunner

    from rag.cli import ask_cmd
    from rag.cli.main import cli
    from rag.generation.answering import Answer

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"bad{ESCAPES}.txt").write_text("Herons wade in shallow water.")
    (docs / f"broken{ESCAPES}.pdf").write_bytes(b"%PDF-1.4 garbage")
    env = {"RAG_EMBEDDER__MODEL": "missing"}  # fails only if used: these paths need no model
    runner = CliRunner()
    from rag.service.pipeline import Pipeline as RealPipeline

    class FakeModels(RealPipeline):
        def __init__(self, settings, kb_name=None, *a, **k) -> None:  # noqa: ANN001
            super().__init__(settings, kb_name, embedder=HashEmbedder())

    import rag.cli.index_cmd as index_cmd
    import rag.cli.search_cmd as search_cmd

    for module in (index_cmd, search_cmd):
        module.Pipeline = FakeModels  # type: ignore[attr-defined]
    try:
        indexed = runner.invoke(cli, ["index", str(docs)], env=env)
        searched = runner.invoke(cli, ["search", "herons", "--mode", "bm25"], env=env)
    finally:
        for module in (index_cmd, search_cmd):
            module.Pipeline = RealPipeline  # type: ignore[attr-defined]
    answer = Answer("q", "Herons wade [1].", [], [{
        "n": 1, "cited": True, "title": f"bad{ESCAPES}", "page": None, "section": None,
        "source": str(docs / f"bad{ESCAPES}.txt"), "snippet": "Herons wade."}], False, [], {}, {})
    with runner.isolation() as (out, _err, _):
        ask_cmd.print_answer(answer, as_json=False)
        ask_cmd.show("\x1b[2J streamed\n")
        asked = out.getvalue().decode()
    for output in (indexed.output, searched.output, asked):
        assert "\x1b" not in output and "\u202e" not in output and "\x07" not in output
    flat = indexed.output.replace("\n", "")  # Rich wraps long lines
    assert "\\x1b]0;pwned\\x07" in flat and "\\u202e" in flat
    assert "\\x1b[31mred" in asked.replace("\n", "") and "\\x1b[2J streamed\n" in asked
    assert "\\x1b" in searched.output.replace("\n", "").replace(" ", "")


@pytest.mark.skipif(not __import__("shutil").which("tesseract"), reason="tesseract not installed")
def test_a_busy_machine_indexes_what_an_idle_one_does(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser and its OCR are paused for longer than their limits (SIGSTOP: what a machine
    too busy to run them looks like): the limits count CPU time, so the scan is read whole, with
    no failure and no warning, as on an idle machine. Wall-time limits dropped its pages."""
    import signal

    from rag.core.config import load_settings
    from tests import hostile

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.tiff").write_bytes(hostile.text_frames_tiff(3))
    monkeypatch.setenv("RAG_INGEST__PARSE_TIMEOUT_S", "2")
    monkeypatch.setenv("RAG_INGEST__OCR_PAGE_TIMEOUT_S", "2")
    paused = threading.Event()

    def pause_ocr() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ocr = children_named("tesseract")
            if ocr:
                stopped = ocr + parser_children()
                for proc in stopped:
                    with contextlib.suppress(psutil.Error):
                        proc.send_signal(signal.SIGSTOP)
                time.sleep(4)
                for proc in stopped:
                    with contextlib.suppress(psutil.Error):
                        proc.send_signal(signal.SIGCONT)
                paused.set()
                return
            time.sleep(0.01)

    pauser = threading.Thread(target=pause_ocr, daemon=True)
    pauser.start()
    pipeline = Pipeline(load_settings(), "busy", embedder=HashEmbedder())
    report = pipeline.index([docs])
    pauser.join(30)
    assert paused.is_set()
    assert report.indexed == 1 and not report.failed and not report.warnings, report
    for i in range(3):
        assert pipeline.search(f"frame number {i}", mode="bm25").hits
