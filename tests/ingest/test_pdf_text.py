"""Text as it comes out of PDFs and scans: presentation forms, private-use ligatures, line-end
hyphens, a second PDF reader, and OCR (Tesseract) with its time limits."""

from __future__ import annotations

import json
import math
import re
import struct
import time
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.loaders import load_file
from ingest.ocr import Tesseract
from ingest.parsing import ParseWorker
from ingest.text import clean, dehyphenate, recover_ligatures
from rag.core.errors import LoadError
from rag.core.types import LoadOptions
from tests.documents import image_pdf, png, text_pdf
from tests.helpers import PAPERS, PDF_EDGE, needs_shared

needs_tesseract = pytest.mark.skipif(not Tesseract.available(), reason="tesseract not installed")
OFF = LoadOptions(ocr="off")
SCAN = [["The quarterly report was approved by the board.",
         "Revenue grew by seventeen percent in Norway."],
        ["The pilot plant in Bergen opens in March."]]


def load(path: Path, options: LoadOptions | None = None):  # noqa: ANN201
    return load_file(path, path.read_bytes(), options or LoadOptions())


def text_of(loaded) -> str:  # noqa: ANN001
    return "\n".join(s.text for d in loaded.documents for s in d.sections)


def test_presentation_forms_unfold_and_meaningful_forms_stay() -> None:
    assert clean("\ufb01rst e\ufb03cient \uff21\uff22 a\u00a0b") == "first efficient AB a b"
    assert clean("x\u00b2 \u00bd \u2460") == "x\u00b2 \u00bd \u2460"  # superscript, fraction, circled


def test_line_end_hyphens() -> None:
    pages = ["the transduc-\ntion model, ap-\n  proximately so; a self-\nattention layer",
             "self-attention again; see Sec-\nTion 3 and pages 10-\n20",
             "a shared source-\ntarget vocabulary, move-to-\nfront coding; Ko-\nray wrote"]
    assert dehyphenate(pages) == [
        "the transduction model, approximately so; a self-attention layer",
        "self-attention again; see Sec-\nTion 3 and pages 10-\n20",
        "a shared source-target vocabulary, move-to-front coding; Koray wrote"]


def test_private_use_ligatures_are_recovered_by_the_words_they_make() -> None:
    pages = ["the \ue000rst result is signi\ue000cant and ef\ue000cient",
             "\ue001oating point \ue001ow; the symbol \ue004 stands alone"]
    fixed, found = recover_ligatures(pages)
    assert found == {"\ue000": "fi", "\ue001": "fl"}
    assert fixed[0] == "the first result is significant and efficient"
    assert "floating point flow" in fixed[1] and "\ue004" in fixed[1]


@needs_shared(PAPERS)
def test_paper_text_is_clean() -> None:
    attention = load(PAPERS / "1706.03762v7.pdf", OFF)
    text = text_of(attention)
    assert "\ue000" not in text and "the first transduction model" in " ".join(text.split())
    assert any("U+E000 = 'fi'" in w for w in attention.warnings)
    shannon = text_of(load(PAPERS / "shannon1948.pdf", OFF))
    assert not re.search("[\ufb00-\ufb06]", shannon)


def test_pdfium_reads_a_pdf_that_pypdf_rejects(tmp_path: Path) -> None:
    good = text_pdf(["Otters hold hands while they sleep.", "Second page."])
    broken = re.sub(rb"xref\n.*?trailer", b"xref\n0 1\nGARBAGE\ntrailer", good, flags=re.S)
    path = tmp_path / "broken-xref.pdf"
    path.write_bytes(broken)
    loaded = load(path, OFF)
    assert [s.page for s in loaded.documents[0].sections] == [1, 2]
    assert "Otters hold hands" in text_of(loaded)
    assert any(w.startswith("read with pdfium: pypdf could not") for w in loaded.warnings)


@pytest.mark.parametrize("data", [
    b"%PDF-1.4\nthis is not a pdf at all\n",
    # a page tree whose only kid is itself: pdfium opens the file, then fails on the page
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages "
    b"/Kids [2 0 R] /Count 1 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
])
def test_unreadable_by_both_readers_names_both(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    with pytest.raises(LoadError, match="pdfium could not read it either"):
        load(path)


def test_scan_without_ocr_is_reported_not_indexed(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_pdf(SCAN))
    with pytest.raises(LoadError, match="no text on any of its 2 page"):
        load(path, OFF)
    image = tmp_path / "page.png"
    image.write_bytes(png(SCAN[0]))
    with pytest.raises(LoadError, match="needs OCR, and ingest.ocr is off"):
        load(image, OFF)


@needs_tesseract
def test_scanned_pdf_is_read_by_ocr_with_pages(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_pdf(SCAN))
    loaded = load(path)
    sections = loaded.documents[0].sections
    assert [s.page for s in sections] == [1, 2]
    assert "seventeen percent in Norway" in sections[0].text
    assert "Bergen opens in March" in sections[1].text
    assert loaded.warnings == ["OCR (tesseract) on page(s) 1-2"]


@needs_tesseract
def test_image_file_is_read_by_ocr(tmp_path: Path) -> None:
    path = tmp_path / "whiteboard.png"
    path.write_bytes(png(SCAN[0]))
    loaded = load(path)
    doc = loaded.documents[0]
    assert doc.kind == "image" and doc.sections[0].page is None
    assert "quarterly report was approved" in doc.sections[0].text


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@needs_tesseract
def test_broken_and_oversized_images_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(png(SCAN[0])[:200])
    with pytest.raises(LoadError, match="unreadable image"):
        load(broken)
    huge = tmp_path / "huge.png"  # a header claiming 20,000 x 20,000 pixels
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20_000, 20_000,
                                                                    8, 0, 0, 0, 0))
                     + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))
    with pytest.raises(LoadError, match="over the limit"):
        load(huge)


@needs_tesseract
@needs_shared(PAPERS)
def test_scanned_paper_is_ocrd_and_a_slow_page_keeps_its_text_layer() -> None:
    loaded = load(PAPERS / "Huffman1952.pdf")
    first = " ".join(loaded.documents[0].sections[0].text.split())
    assert "minimum-redundancy code is one constructed in such a way" in first
    assert loaded.warnings == ["OCR (tesseract) on page(s) 1-4"]
    hurried = load(PAPERS / "Huffman1952.pdf", LoadOptions(ocr_page_timeout_s=0.01))
    assert [s.page for s in hurried.documents[0].sections] == [1, 2]  # their text layers
    assert any("page 3: OCR failed (OCR used over 0.01 s of CPU time (ingest.ocr_page_timeout_s)" in w
               for w in hurried.warnings)


@needs_tesseract
@needs_shared(PDF_EDGE)
def test_image_only_pages_with_no_text_are_not_unreadable() -> None:
    loaded = load(PDF_EDGE / "imagemagick-images.pdf")
    assert loaded.warnings == ["page(s) 4-5: no text layer and OCR found no text "
                               "(blank, or pictures only)"]


@needs_tesseract
def test_a_long_scan_is_slow_not_stuck(tmp_path: Path) -> None:
    """The parser's time limit counts from the last OCR'd page, not from the file's start.

    The limit is set from a warm worker's time for one page, with room for a loaded machine;
    the file takes about twice the limit in all."""
    one = tmp_path / "one-page.pdf"
    one.write_bytes(image_pdf(SCAN[:1]))
    worker = ParseWorker(timeout_s=600, options=LoadOptions())
    try:
        worker.load(one, one.read_bytes())  # starts the child, imports done
        started = time.perf_counter()
        worker.load(one, one.read_bytes())
        page_s = time.perf_counter() - started
        worker.timeout_s = max(5 * page_s, 3.0)
        pages = math.ceil(2 * worker.timeout_s / page_s) + 1
        path = tmp_path / "long-scan.pdf"
        path.write_bytes(image_pdf(SCAN[:1] * pages))
        loaded = worker.load(path, path.read_bytes())
    finally:
        worker.close()
    assert len(loaded.documents[0].sections) == pages


@pytest.mark.integration
@needs_tesseract
@needs_shared(PAPERS)
def test_search_finds_a_sentence_of_the_scanned_paper(tmp_path: Path) -> None:
    from rag.cli.main import cli

    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "Huffman1952.pdf").write_bytes((PAPERS / "Huffman1952.pdf").read_bytes())
    result = CliRunner().invoke(cli, ["index", str(folder), "--kb", "scan", "--json"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, [
        "search", "code constructed so that the average number of coding digits per message is "
        "minimized", "--kb", "scan", "-k", "1", "--json"])
    hit = json.loads(result.stdout)["hits"][0]
    assert hit["page"] == 1 and "average number of coding digits" in " ".join(hit["text"].split())
