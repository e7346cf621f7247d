"""Office documents, spreadsheets, CSV and EPUB, made by the tests: provenance (page, slide,
sheet, section, span), tables kept as rows under their header, and bad files refused."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.chunking import TokenChunker
from ingest.loaders import load_file
from rag.core.errors import LoadError
from tests.documents import png, table_pdf
from tests.fakes import HashEmbedder

RESULTS = [["Model", "BLEU EN-DE", "BLEU EN-FR", "Training cost (FLOPs)"],
           ["ByteNet", "23.75", "", ""],
           ["ConvS2S", "25.16", "40.46", "9.6e18"],
           ["Transformer (base model)", "27.3", "38.1", "3.3e18"],
           ["Transformer (big)", "28.4", "41.8", "2.3e19"]]


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Translation results"
    document.add_heading("Machine translation", 1)
    document.add_paragraph("We compare models on the WMT 2014 translation tasks.")
    document.add_heading("Scores", 2)
    table = document.add_table(rows=len(RESULTS), cols=len(RESULTS[0]))
    for row, values in zip(table.rows, RESULTS, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("The big model is best on both tasks.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Quarterly review"
    first.placeholders[1].text = "Sales rose in every region."
    first.notes_slide.notes_text_frame.text = "Mention the Oslo office."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Regional sales"
    shape = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, values in enumerate([["Region", "Sales"], ["North", "120"], ["South", "95"]]):
        for c, value in enumerate(values):
            shape.table.cell(r, c).text = value
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Inventory"
    for row in [["Item", "Count", "Shelf"], ["Bolts", 400, "A1"], ["Nuts", 250, "A2"], [],
                ["Washers", 1200, "B7"]]:
        sheet.append(row)
    prices = book.create_sheet("Prices")
    prices.append(["Item", "Price"])
    prices.append(["Bolts", 0.12])
    prices.append(["Total", "=B2*2"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def epub_bytes() -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("A Field Guide")
    book.set_language("en")
    chapters = []
    for i, (head, body) in enumerate([("Herons", "Herons stand still in shallow water."),
                                      ("Owls", "Owls hunt at night without a sound.")], 1):
        chapter = epub.EpubHtml(title=head, file_name=f"c{i}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{head}</h1><p>{body}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


def load(name: str, data: bytes, tmp_path: Path):  # noqa: ANN201
    path = tmp_path / name
    path.write_bytes(data)
    return load_file(path, data)


def test_docx_headings_are_sections_and_tables_rows(tmp_path: Path) -> None:
    doc = load("results.docx", docx_bytes(), tmp_path).documents[0]
    assert doc.kind == "docx" and doc.title == "Translation results"
    scores = next(s for s in doc.sections if s.title == "Machine translation > Scores")
    assert "| Model | BLEU EN-DE | BLEU EN-FR | Training cost (FLOPs) |" in scores.text
    assert "| Transformer (big) | 28.4 | 41.8 | 2.3e19 |" in scores.text
    assert "The big model is best" in scores.text


W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
BOXED = (  # a text box as Word writes it: DrawingML, with a VML copy for older readers
    f'<w:p xmlns:w="{W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
    '<w:r><w:t>Anchor text.</w:t></w:r><w:r><mc:AlternateContent><mc:Choice Requires="wps">'
    '<w:drawing><w:txbxContent><w:p><w:r><w:t>Boxed: herons eat fish.</w:t></w:r></w:p>'
    '</w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r>'
    '<w:t>Boxed: herons eat fish.</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback>'
    '</mc:AlternateContent></w:r></w:p>')


def sdt(text: str, gallery: str = "") -> str:
    """A block content control (a form field; with a gallery, say a table of contents)."""
    props = (f'<w:sdtPr><w:docPartObj><w:docPartGallery w:val="{gallery}"/></w:docPartObj>'
             '</w:sdtPr>' if gallery else "<w:sdtPr/>")
    return (f'<w:sdt xmlns:w="{W}">{props}<w:sdtContent><w:p><w:r><w:t>{text}</w:t></w:r></w:p>'
            '</w:sdtContent></w:sdt>')


def test_docx_nested_tables_text_boxes_and_content_controls_are_read(tmp_path: Path) -> None:
    import docx
    from lxml import etree

    document = docx.Document()
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Outer"
    inner = table.cell(0, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "Applicant", "Ada Lovelace"
    body = document.element.body
    for xml in (BOXED, sdt("Contents 1 Intro 2", "Table of Contents"), sdt("Signed in Oslo.")):
        body.insert(len(body) - 1, etree.fromstring(xml))
    out = io.BytesIO()
    document.save(out)
    text = load("form.docx", out.getvalue(), tmp_path).documents[0].sections[0].text
    assert "| Outer | Applicant; Ada Lovelace |" in text
    assert text.count("Boxed: herons eat fish.") == 1 and "Anchor text." in text
    assert "Signed in Oslo." in text and "Contents 1 Intro" not in text


def test_pptx_slides_are_pages(tmp_path: Path) -> None:
    doc = load("review.pptx", pptx_bytes(), tmp_path).documents[0]
    assert [(s.page, s.title) for s in doc.sections] == [(1, "Quarterly review"),
                                                         (2, "Regional sales")]
    assert "Notes: Mention the Oslo office." in doc.sections[0].text
    assert "| North | 120 |" in doc.sections[1].text


def test_xlsx_sheets_are_sections_with_values(tmp_path: Path) -> None:
    doc = load("stock.xlsx", xlsx_bytes(), tmp_path).documents[0]
    assert [s.title for s in doc.sections] == ["Inventory", "Prices"]
    assert doc.sections[0].text.splitlines()[:2] == ["| Item | Count | Shelf |",
                                                     "| --- | --- | --- |"]
    assert "| Washers | 1200 | B7 |" in doc.sections[0].text  # the empty row is dropped
    assert "| Bolts | 0.12 |" in doc.sections[1].text


def test_csv_delimiter_is_detected(tmp_path: Path) -> None:
    data = b"city;population;country\nOslo;709000;Norway\nBergen;291000;Norway\n"
    doc = load("cities.csv", data, tmp_path).documents[0]
    assert doc.kind == "csv"
    assert doc.sections[0].text.splitlines()[2] == "| Oslo | 709000 | Norway |"


def test_epub_chapters_in_reading_order(tmp_path: Path) -> None:
    doc = load("guide.epub", epub_bytes(), tmp_path).documents[0]
    assert doc.title == "A Field Guide"
    assert [s.title for s in doc.sections] == ["Herons", "Owls"]
    assert "without a sound" in doc.sections[1].text


def test_chunks_of_office_files_point_at_their_text(tmp_path: Path) -> None:
    chunker = TokenChunker(HashEmbedder(max_tokens=64), overlap_tokens=0)
    for name, data in [("r.docx", docx_bytes()), ("d.pptx", pptx_bytes()),
                       ("s.xlsx", xlsx_bytes()), ("g.epub", epub_bytes())]:
        doc = load(name, data, tmp_path).documents[0]
        sections = {(s.page, s.title): s.text for s in doc.sections}
        for chunk in chunker.chunk(doc):
            span = sections[(chunk.page, chunk.section)][chunk.char_start:chunk.char_end]
            assert chunk.text.endswith(span), name


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("broken.docx", docx_bytes()[:900], "corrupt DOCX"),
    ("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "password-protected"),
    ("empty.xlsx", None, "no cells with content"),
    ("drm.epub", None, "EPUB with DRM"),
    ("blank.csv", b",,\n,,\n", "no cells with content"),
    # valid ZIPs without the format's parts: the library's own error, named once
    ("odd.docx", None, r"unreadable DOCX: not a valid DOCX package \(AttributeError"),
    ("odd.epub", None, r"unreadable EPUB: not a valid EPUB package \(KeyError"),
])
def test_bad_office_files_have_specific_reasons(tmp_path: Path, name: str, data: bytes | None,
                                                reason: str) -> None:
    if name == "empty.xlsx":
        from openpyxl import Workbook

        out = io.BytesIO()
        Workbook().save(out)
        data = out.getvalue()
    if name == "drm.epub":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as package, zipfile.ZipFile(io.BytesIO(epub_bytes())) as book:
            for item in book.infolist():
                package.writestr(item, book.read(item))
            package.writestr("META-INF/encryption.xml", "<encryption/>")
        data = out.getvalue()
    if name.startswith("odd."):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as package:
            package.writestr("[Content_Types].xml", "<Types/>")
            package.writestr("mimetype", "application/epub+zip")
        data = out.getvalue()
    assert data is not None
    with pytest.raises(LoadError, match=reason):
        load(name, data, tmp_path)


@pytest.mark.integration
def test_a_table_cell_question_retrieves_its_row(tmp_path: Path) -> None:
    """Indexed with the real embedder, next to other formats (a PDF table too): the row comes
    back in the top 3."""
    from rag.cli.main import cli

    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, data in [("results.docx", docx_bytes()), ("review.pptx", pptx_bytes()),
                       ("stock.xlsx", xlsx_bytes()), ("guide.epub", epub_bytes()),
                       ("cities.csv", b"city,population\nOslo,709000\nBergen,291000\n"),
                       ("compressors.pdf", table_pdf(
                           ["Table 3: Comparison with other compression programmes."],
                           [["Programme", "Total CPU time (s)", "Mean bits per char"],
                            ["compress", "9.6", "3.63"], ["gzip", "42.6", "2.71"],
                            ["bzip", "51.1", "2.43"]], ["All runs on the Calgary corpus."]))]:
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("Translation quality is measured with BLEU. Higher BLEU "
                                      "means closer to human references.")
    runner = CliRunner()
    result = runner.invoke(cli, ["index", str(folder), "--kb", "office", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["indexed"] == 7 and not report["failed"]
    result = runner.invoke(cli, ["search", "What BLEU score did the big Transformer get on "
                                 "English-German?", "--kb", "office", "-k", "3", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert any("| Transformer (big) | 28.4 |" in h["text"] for h in hits)
    result = runner.invoke(cli, ["search", "How many washers are in stock?", "--kb", "office",
                                 "-k", "3", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert any("| Washers | 1200 | B7 |" in h["text"] and h["section"] == "Inventory"
               for h in hits)
    result = runner.invoke(cli, ["search", "How many bits per character did gzip need?", "--kb",
                                 "office", "-k", "3", "--json"])
    hits = json.loads(result.stdout)["hits"]
    assert any("| gzip | 42.6 | 2.71 |" in h["text"] and h["page"] == 1 for h in hits)


def test_png_in_a_folder_is_an_image_kind(tmp_path: Path) -> None:
    from ingest.loaders import detect_kind

    assert detect_kind(tmp_path / "x.bin", png(["Hello"])) == "image"
