"""The pieces behind the UI: upload names, HTML rendering, page rendering, feedback, jobs,
follow-up rewriting and the launcher's choice of LLM server."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pypdf
import pytest
from click.testing import CliRunner

from ingest.ocr import Tesseract
from ingest.page_images import find_spans, render_page
from rag.cli.main import cli
from rag.core.config import load_settings
from rag.core.errors import PageRenderError
from rag.generation.conversation import clean_rewrite, trim_history
from rag.generation.server import LlmState, plan_llm
from rag.service.jobs import JobRunner
from rag.service.uploads import Upload, safe_name, save_uploads
from rag.storage.feedback import FeedbackStore, feedback_path
from tests.documents import image_pdf
from tests.helpers import PAPERS, needs_shared
from ui import render
from ui.launcher import streamlit_command

ATTENTION = PAPERS / "1706.03762v7.pdf"


@pytest.mark.parametrize(("raw", "safe"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("..", "upload"),
    ("", "upload"),
    (".bashrc", "bashrc"),
    ("a\x00b\nc.txt", "abc.txt"),
    ("my notes (v2).md", "my notes (v2).md"),
    ("résumé.pdf", "résumé.pdf"),
    ("x;rm -rf $HOME.txt", "x_rm -rf _HOME.txt"),
])
def test_safe_name(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_safe_name_keeps_the_extension_of_long_names() -> None:
    name = safe_name("a" * 500 + ".pdf")
    assert len(name) <= 120 and name.endswith(".pdf")


def test_save_uploads_stays_in_folder_and_refuses_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "kb" / "uploads"
    saved, refused = save_uploads(folder, [
        Upload("../../escape.txt", b"hello"), Upload("big.txt", b"x" * 11),
        Upload("empty.txt", b""), Upload("ok.txt", b"fine")], max_bytes=10)
    assert saved == [folder.resolve() / "escape.txt", folder.resolve() / "ok.txt"]
    assert not (tmp_path / "escape.txt").exists()
    reasons = dict(refused)
    assert "over the upload limit" in reasons["big.txt"] and "empty" in reasons["empty.txt"]
    assert sorted(p.name for p in folder.iterdir()) == ["escape.txt", "ok.txt"]  # no partials
    # A later upload of the same name is a new version of it.
    assert save_uploads(folder, [Upload("ok.txt", b"v2")], 10)[0] == [folder.resolve() / "ok.txt"]
    assert (folder / "ok.txt").read_bytes() == b"v2"


def test_colliding_upload_names_are_refused_not_merged(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    saved, refused = save_uploads(folder, [Upload("q1/report.md", b"one"),
                                           Upload("q2\\report.md", b"two"),
                                           Upload("notes.md", b"three")], max_bytes=100)
    assert [p.name for p in saved] == ["notes.md"]
    reasons = dict(refused)
    assert "collide" in reasons["q1/report.md"] and "collide" in reasons["q2\\report.md"]
    assert not (folder / "report.md").exists()
    # Over-limit files are refused before anything of the batch is written.
    assert save_uploads(tmp_path / "none", [Upload("a.txt", b"x" * 200)], 100)[0] == []
    assert not (tmp_path / "none").exists()


SOURCES = [{"n": 1, "title": "Cats <b>", "page": 2, "section": None, "source": "cats.pdf",
            "snippet": 'Cats "purr" [3]', "cited": True}]


def test_answer_html_links_citations_and_marks_flagged_sentences() -> None:
    sentences = [{"text": "Cats purr [1].", "supported": True},
                 {"text": "Dogs <fly>.", "supported": False, "flags": ["uncited"],
                  "suggested": 1, "support": None}]
    out = render.answer_html("t1", "Cats purr [1]. Dogs <fly>.", sentences, SOURCES)
    assert '<a class="cite" href="#sources-t1" title="Cats &#60;b&#62;, page 2&#58; Cats &#34;purr' \
           in out
    assert "&#91;3&#93;" in out and out.count('class="cite"') == 1  # brackets in hover text stay text
    assert ('<span class="unsupported" title="uncited; best matching source&#58; 1">'
            'Dogs &#60;fly&#62;.') in out


def test_attributed_citations_are_marked_apart() -> None:
    sentences = [{"text": "Cats purr [1].", "supported": True, "attributed": [1]}]
    out = render.answer_html("t1", "Cats purr [1].", sentences, SOURCES)
    assert '<a class="cite attributed" href="#sources-t1" title="cited by rag after generation' \
        in out
    plain = render.answer_html("t1", "Cats purr [1].", [{"text": "Cats purr [1].",
                                                        "supported": True}], SOURCES)
    assert "attributed" not in plain


def test_passage_html_merges_and_escapes() -> None:
    out = render.passage_html("a <b> c d e", [(0, 5), (2, 7), (10, 11)])
    assert out == '<div class="rag-passage"><mark>a &#60;b&#62; c</mark> d <mark>e</mark></div>'


def test_evidence_spans_and_labels() -> None:
    sentences = [{"evidence": {"1": [0, 4], "2": [5, 9]}}, {"evidence": {1: [0, 4]}}]
    assert render.evidence_spans(1, sentences) == [(0, 4)]
    assert render.source_label({**SOURCES[0], "cited": False}) == "[1] Cats <b> · p. 2 (not cited)"
    line = render.scores_line({"scores": {"dense": 0.5, "bm25": None, "fused": 0.03,
                                          "rerank": None}, "ranks": {"dense": 2}})
    assert line == "dense 0.5 (#2) · BM25 – · fused 0.03 · rerank –"
    timings = {"retrieve_s": 0.02, "rewrite_s": 1.2, "generate_s": 5.0, "first_token_s": 1.0,
               "completion_tokens": 60, "prompt_tokens": 2592}
    assert render.timings_line(timings, "m") == ("retrieve 0.02 s · rewrite 1.2 s · generate 5.0 s "
                                                 "· prompt 2,592 tokens · first token 1.0 s · "
                                                 "15 tok/s · m")


@needs_shared(ATTENTION)
def test_render_page_marks_the_cited_passage() -> None:
    text = pypdf.PdfReader(ATTENTION).pages[2].extract_text()
    passage = text[text.index("The encoder is composed"):][:500]
    page = render_page(ATTENTION, 3, passage, ["The encoder is composed of a stack of N = 6 "
                                               "identical layers."])
    assert page.png.startswith(b"\x89PNG") and page.marked == page.wanted == 2 and not page.notes
    from PIL import Image

    image = Image.open(io.BytesIO(page.png)).convert("RGB")
    marked = sum(1 for r, g, b in image.getdata() if r > 240 and 100 < b < 200 and g > 150)
    assert marked > 1000  # yellow-ish pixels under the passage


def test_render_page_of_a_scan_without_ocr_says_nothing_can_be_marked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.ocr

    monkeypatch.setattr(ingest.ocr, "ocr_engine", lambda *a: None)
    (tmp_path / "scan.pdf").write_bytes(image_pdf([["A method for the construction of codes"]]))
    page = render_page(tmp_path / "scan.pdf", 1, "A method for the construction")
    assert page.marked == 0 and "no text layer" in page.notes[0]


@pytest.mark.skipif(not Tesseract.available(), reason="tesseract not installed")
def test_render_page_of_a_scan_marks_the_ocr_words(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "scan.pdf").write_bytes(image_pdf([["A method for the construction of codes",
                                                    "Nothing else is marked on this line."]]))
    page = render_page(tmp_path / "scan.pdf", 1, "A method for the construction of codes")
    assert page.marked == 1 and page.notes == ["marked on the page's OCR text"]
    image = Image.open(io.BytesIO(page.png)).convert("RGB")
    rows = [y for y in range(image.height)
            if any(r > 240 and g > 150 and b < 200 for r, g, b in
                   (image.getpixel((x, y)) for x in range(0, image.width, 4)))]
    assert rows and max(rows) - min(rows) < image.height / 10  # the first line only


def test_render_page_errors(tmp_path: Path) -> None:
    with pytest.raises(PageRenderError, match="no longer there"):
        render_page(tmp_path / "gone.pdf", 1, "x")
    (tmp_path / "not.pdf").write_text("hello")
    with pytest.raises(PageRenderError, match="cannot open not.pdf"):
        render_page(tmp_path / "not.pdf", 1, "x")
    if ATTENTION.exists():
        with pytest.raises(PageRenderError, match="has 15 pages, not a page 99"):
            render_page(ATTENTION, 99, "x")


def test_find_spans_ignores_spacing_hyphenation_and_ligatures() -> None:
    page = "The \ufb01rst layer is posi-\ntion-wise; it is fully connected."
    spans = find_spans(page, "The first layer is position- wise; it is fully connected.")
    assert spans == [(0, len(page) - 1)]  # up to the last letter
    assert find_spans(page, "nothing like this appears on the page") == []


def test_feedback_store_replaces_and_exports(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite")
    answer = {"question": "Q?", "text": "A [1].", "sources": [{"n": 1, "title": "T", "text": "p",
                                                                "extra": "dropped"}],
              "sentences": [{"text": "A [1]."}], "models": {"generator": "g"}}
    store.record("a1", "kb", answer, "up")
    store.record("a1", "kb", answer, "down", "  wrong  ")
    store.record("a2", "kb", answer, "up")
    with pytest.raises(ValueError, match="rating must be"):
        store.record("a3", "kb", answer, "meh")
    out = io.StringIO()
    assert store.export_jsonl(out, "down") == 1
    row = json.loads(out.getvalue())
    assert row["comment"] == "wrong" and row["sources"][0] == {
        "n": 1, "cited": None, "chunk_id": None, "title": "T", "source": None, "page": None,
        "section": None, "text": "p", "scores": None}
    assert store.count() == 2


def test_feedback_cli_export(settings, tmp_path: Path) -> None:  # noqa: ANN001
    store = FeedbackStore(feedback_path(settings.home))
    store.record("a1", "kb", {"question": "Q?", "text": "A."}, "up")
    out = tmp_path / "eval.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["question"] == "Q?"
    from eval.answers import load_questions

    question = load_questions(out)[0]  # the export is a question set for rag eval answers
    assert (question.question, question.id, question.reference) == ("Q?", "a1", "A.")
    result = CliRunner().invoke(cli, ["feedback", "stats", "--json"])
    assert json.loads(result.output) == {"up": 1, "down": 0}


def test_job_runner_one_job_per_kb_and_failures_reported() -> None:
    runner = JobRunner()
    gate = threading.Event()

    def slow(paths, job):  # noqa: ANN001, ANN202
        job.start(1)
        gate.wait(5)
        raise RuntimeError("disk full")

    job = runner.start("kb", [Path("a")], slow)
    with pytest.raises(RuntimeError, match="already running"):
        runner.start("kb", [Path("b")], slow)
    gate.set()
    deadline = time.time() + 5
    while job.running and time.time() < deadline:
        time.sleep(0.01)
    assert job.error == "RuntimeError: disk full" and not job.running
    refused = runner.start("kb", [], slow, refused=[("x.txt", "too big")])
    assert not refused.running and refused.refused == [("x.txt", "too big")]


def test_trim_history_and_clean_rewrite() -> None:
    history = [(f"q{i}", "long answer [1] " * 100) for i in range(5)]
    trimmed = trim_history(history)
    assert [q for q, _ in trimmed] == ["q2", "q3", "q4"]
    assert "[1]" not in trimmed[0][1] and len(trimmed[0][1]) <= 404
    prev = "What is BPE?"
    assert clean_rewrite('Standalone question: "When was BPE proposed?"\nextra', "When was it "
                         "proposed?", prev) == "When was BPE proposed?"
    for bad in ("", "The indexed documents do not answer this.", "x " * 200, "When?"):
        assert clean_rewrite(bad, "When?", prev) == "What is BPE? When?"
    # The subject swapped for the previous one ("decoder" lost): keep both questions instead.
    assert clean_rewrite("How many layers does the encoder have?", "And the decoder?",
                         "How many layers does the encoder have?") == (
        "How many layers does the encoder have? And the decoder?")
    assert clean_rewrite("", "When?", "") == "When?"


class Health(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()


def test_launcher_uses_a_reachable_configured_server() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        state, server = plan_llm(load_settings(generator={"mode": "served", "server_url": url}))
        assert server is None and not state.managed and state.url == url
    finally:
        httpd.shutdown()


def test_launcher_starts_a_server_when_none_answers(settings) -> None:  # noqa: ANN001
    dead = "http://127.0.0.1:9/v1"
    state, server = plan_llm(load_settings(generator={"mode": "served", "server_url": dead}))
    assert server is not None and state.managed and state.url != dead
    assert state.notice.startswith(f"The LLM server {dead} is not reachable. Started a local")
    off = load_settings(generator={"mode": "served", "server_url": dead}, ui={"start_llm": False})
    state, server = plan_llm(off)
    assert server is None and "ui.start_llm is off" in state.notice


def test_streamlit_command_and_state_file(settings, tmp_path: Path) -> None:  # noqa: ANN001
    cmd = streamlit_command(load_settings(ui={"max_upload_mb": 5}), "0.0.0.0", 9000, True)
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert cmd[4].endswith("app.py") and flags["--server.maxUploadSize"] == "5"
    assert flags["--server.headless"] == "true" and flags["--server.port"] == "9000"
    LlmState("u", "m", True, "n", pid=3).save(tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["pid"] == 3


HOSTILE = ('![x](http://evil.test/i.png) [click](http://evil.test/l) <img src="http://evil.test/r"> '
           'http://evil.test/auto www.evil.test a@evil.test :red[x] $x$ `code` **b**')


def test_document_and_model_text_cannot_make_markdown() -> None:
    """Images, links, autolinks, tags, directives: all stay literal characters."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("gfm-like")  # linkify (autolinks) on, like Streamlit's remark-gfm
    for rendered in (render.text(HOSTILE), render.md(HOSTILE),
                     render.answer_html("t", HOSTILE + " [1].", [], SOURCES),
                     render.passage_html(HOSTILE, [(0, 5)])):
        html = parser.render(rendered)
        assert "<img" not in html and "href=\"http" not in html and "<a href" not in html, html
        assert "<strong>" not in html and "<code>" not in html
    assert parser.render(render.md(HOSTILE)).count("evil.test") == 6  # the text is all there


def test_render_page_caps_pixels_of_huge_pages(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    from ingest.page_images import MAX_PIXELS, render_page

    writer = PdfWriter()
    writer.add_blank_page(width=4000, height=4000)  # a few hundred bytes; 36 Mpx at scale 1.5
    path = tmp_path / "huge.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    page = render_page(path, 1, "nothing to find here at all")
    assert page.width * page.height <= MAX_PIXELS and page.width >= 1900
