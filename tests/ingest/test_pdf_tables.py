"""Tables in PDFs: found between horizontal rules, kept as Markdown tables in place of their
lines, rows whole under their header; pages without rules and framed paragraphs are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.loaders import load_file
from rag.core.types import LoadOptions
from tests.documents import table_pdf, text_pdf

PAPERS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "papers"
ROWS = [["Model", "BLEU EN-DE", "BLEU EN-FR"],
        ["ByteNet", "23.75", "n/a"],
        ["ConvS2S", "25.16", "40.46"],
        ["Transformer big", "28.4", "41.8"]]
BEFORE = ["Table 2: Translation quality on newstest2014.", "Higher is better."]
AFTER = ["The big model is best on both pairs."]


def load(tmp_path: Path, data: bytes, **options: object):  # noqa: ANN201
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return load_file(path, data, LoadOptions(ocr="off", **options))


@pytest.mark.parametrize("grid", [False, True], ids=["booktabs", "grid"])
def test_a_ruled_table_becomes_a_markdown_table_in_place(tmp_path: Path, grid: bool) -> None:
    loaded = load(tmp_path, table_pdf(BEFORE, ROWS, AFTER, grid=grid))
    text = loaded.documents[0].sections[0].text
    assert text.splitlines() == [
        *BEFORE,
        "| Model | BLEU EN-DE | BLEU EN-FR |",
        "| --- | --- | --- |",
        "| ByteNet | 23.75 | n/a |",
        "| ConvS2S | 25.16 | 40.46 |",
        "| Transformer big | 28.4 | 41.8 |",
        *AFTER,
    ]
    assert loaded.warnings == ["1 table(s) kept as tables on page(s) 1"]


def test_tables_off_keeps_the_text_layer(tmp_path: Path) -> None:
    loaded = load(tmp_path, table_pdf(BEFORE, ROWS, AFTER), pdf_tables=False)
    text = loaded.documents[0].sections[0].text
    assert "|" not in text and "Transformer big 28.4 41.8" in text and not loaded.warnings


def test_a_framed_paragraph_is_not_a_table(tmp_path: Path) -> None:
    """Two rules of one width around plain lines of text (a boxed note) are not a table."""
    note = [["Note: the results above were measured on one machine."],
            ["Numbers from other machines differ."]]
    loaded = load(tmp_path, table_pdf(["Introduction."], note, ["End."]))
    assert "|" not in loaded.documents[0].sections[0].text and not loaded.warnings


def test_the_chunker_keeps_pdf_table_rows_under_their_header(tmp_path: Path) -> None:
    from ingest.chunking import unit_spans

    text = load(tmp_path, table_pdf(BEFORE, ROWS, AFTER)).documents[0].sections[0].text
    rows = [(text[a:b], text[h[0]:h[1]]) for a, b, h in unit_spans(text) if h is not None]
    assert rows[-1] == ("| Transformer big | 28.4 | 41.8 |",
                        "| Model | BLEU EN-DE | BLEU EN-FR |\n| --- | --- | --- |")


def test_text_pdfs_cost_no_table_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages without rules are never opened with pdfplumber."""
    import ingest.pdf_tables as pdf_tables

    opened: list[list[int]] = []
    real = pdf_tables.find_tables
    monkeypatch.setattr(pdf_tables, "find_tables",
                        lambda data, pages, alive: opened.append(pages) or real(data, pages))
    load(tmp_path, text_pdf(["Plain text.\nNo tables here.", "Page two."]))
    assert opened == [[]]


@pytest.mark.skipif(not PAPERS.is_dir(), reason="needs ../shared/corpora/papers")
def test_the_attention_papers_bleu_table() -> None:
    path = PAPERS / "1706.03762v7.pdf"
    loaded = load_file(path, path.read_bytes(), LoadOptions(ocr="off"))
    page8 = next(s.text for s in loaded.documents[0].sections if s.page == 8)
    lines = page8.splitlines()
    header = next(line for line in lines if line.startswith("| Model |"))
    assert "BLEU EN-DE" in header
    assert any(line.startswith("| Transformer (big) |") and "| 28.4 | 41.8 |" in line
               for line in lines)
    assert "Transformer (big) 28.4 41.8" not in page8  # the text layer's line was replaced
    assert "4 table(s) kept as tables on page(s) 6, 8-10" in loaded.warnings


def test_the_page_view_marks_a_table_row(tmp_path: Path) -> None:
    """The row's cells are in the text layer's order, so the page view finds and marks it."""
    from ingest.page_images import render_page

    path = tmp_path / "doc.pdf"
    path.write_bytes(table_pdf(BEFORE, ROWS, AFTER))
    page = render_page(path, 1, "| Transformer big | 28.4 | 41.8 |")
    assert page.marked == 1 and not page.notes


def test_a_failing_table_pass_keeps_the_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pdf_tables as pdf_tables

    def broken(data: bytes, pages: list[int], alive: object) -> list:
        raise ValueError("odd stream")

    monkeypatch.setattr(pdf_tables, "find_tables", broken)
    loaded = load(tmp_path, table_pdf(BEFORE, ROWS, AFTER))
    assert "Transformer big 28.4 41.8" in loaded.documents[0].sections[0].text
    assert loaded.warnings == ["tables not detected (ValueError: odd stream); their text is "
                               "kept as lines"]


def test_a_second_table_never_replaces_the_first() -> None:
    """Two tables on a page with the same cells: the second replaces its own lines only."""
    from ingest.pdf_tables import PdfTable, place

    table = PdfTable(1, [["Model", "BLEU"], ["base", "27.3"], ["big", "28.4"]])
    page = place("Table 1\nModel BLEU\nbase 27.3\nbig 28.4\nTable 2\nModel BLEU\nbase 27.3\n"
                 "big 28.4\nEnd.", table)
    page = place(page, table)
    assert page.split("\n") == ["Table 1", *table.markdown().split("\n"), "Table 2",
                                *table.markdown().split("\n"), "End."]
