"""Office documents, spreadsheets and e-books: DOCX (headings as sections, tables), PPTX (a
slide per page), XLSX and CSV (a sheet per section, rows under their header), EPUB (chapters in
reading order). Each library is imported when its first file comes."""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from ingest.markup import heading_document, html_document
from ingest.text import TextBudget, clean, decode_text, markdown_table
from rag.core.errors import LoadError
from rag.core.types import Document, Loaded, LoadOptions, Section

MAX_ROWS = 100_000  # per sheet; a bigger one is a database export, indexed up to here


def check_package(data: bytes, what: str, max_mb: int) -> None:
    """Office and EPUB files are ZIP packages, opened whole by their libraries: one that
    declares, or turns out while being inflated (in 1 MB steps, never whole), to hold more than
    ``max_mb`` is refused before they see it (a zip bomb: a few MB that inflate to gigabytes);
    a damaged one gets one clear reason."""
    limit = max_mb * 2**20
    too_big = (f"{what} package inflates to more than {max_mb:,} MB (ingest.max_unzipped_mb): a "
               "zip bomb, or a document too large to index")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
            if sum(m.file_size for m in members) > limit:
                raise LoadError(too_big)
            inflated = 0
            for member in members:
                with package.open(member) as part:
                    while chunk := part.read(2**20):
                        inflated += len(chunk)
                        if inflated > limit:
                            raise LoadError(too_big)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise LoadError(f"corrupt {what}: a part of its package is damaged ({exc})") from None


class _PackageLoader:
    """What the ZIP-based loaders share: the job's options, the package check first, and one
    reason for a package its library cannot read (a valid ZIP whose parts are not those of the
    format: python-docx raised AttributeError from lxml, ebooklib KeyError)."""

    kind = ""
    what = ""

    def __init__(self, options: LoadOptions | None = None) -> None:
        self.options = options or LoadOptions()

    def load(self, path: Path, data: bytes) -> Loaded:
        check_package(data, self.what, self.options.max_unzipped_mb)
        try:
            return self.read(path, data)
        except (LoadError, MemoryError):
            raise
        except Exception as exc:
            detail = (str(exc).splitlines() or [""])[0][:200]
            raise LoadError(f"unreadable {self.what}: not a valid {self.what} package "
                            f"({type(exc).__name__}: {detail})") from None

    def read(self, path: Path, data: bytes) -> Loaded:
        raise NotImplementedError


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


def _blocks(container):  # noqa: ANN001, ANN202 - lxml elements
    """The paragraphs and tables of a body, cell or text box in order; content controls
    (w:sdt: form fields, cover pages) are entered, a table of contents is not (it repeats the
    headings)."""
    for element in container.iterchildren():
        if element.tag in (f"{_W}p", f"{_W}tbl"):
            yield element
        elif element.tag == f"{_W}sdt":
            gallery = element.find(f"{_W}sdtPr/{_W}docPartObj/{_W}docPartGallery")
            content = element.find(f"{_W}sdtContent")
            if content is not None and (gallery is None or "Contents" not in
                                        (gallery.get(f"{_W}val") or "")):
                yield from _blocks(content)


def _inside(element, ancestor, tags: tuple[str, ...]) -> bool:  # noqa: ANN001
    parent = element.getparent()
    while parent is not None and parent is not ancestor:
        if parent.tag in tags:
            return True
        parent = parent.getparent()
    return False


def _paragraph_text(p, parent) -> str:  # noqa: ANN001 - lxml element, python-docx parent
    """A paragraph's text, then that of the text boxes anchored in it (each once: a box's VML
    fallback copy is skipped, as are boxes inside boxes, which their box reads)."""
    from docx.text.paragraph import Paragraph

    boxes = [box for box in p.iter(f"{_W}txbxContent")
             if not _inside(box, p, (_FALLBACK, f"{_W}txbxContent"))]
    texts = [Paragraph(p, parent).text] + [_blocks_text(box, parent) for box in boxes]
    return "\n".join(t for t in texts if t.strip())


def _blocks_text(container, parent) -> str:  # noqa: ANN001
    """Every paragraph and table of a cell or text box as lines (a nested table's row as its
    cells joined by semicolons)."""
    from docx.table import Table

    lines = []
    for block in _blocks(container):
        if block.tag == f"{_W}p":
            lines.append(_paragraph_text(block, parent))
        else:
            lines += ["; ".join(t for t in (_blocks_text(c._tc, c) for c in row.cells) if t)
                      for row in Table(block, parent).rows]
    return "\n".join(line for line in lines if line.strip())


class DocxLoader(_PackageLoader):
    """Paragraphs and tables in document order, with what cells, nested tables, text boxes
    and content controls hold; Heading and Title styles name sections."""

    kind, what = "docx", "DOCX"

    def read(self, path: Path, data: bytes) -> Loaded:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        headings: list[tuple[int, int, str]] = []
        offset = 0
        for element in _blocks(document.element.body):
            if element.tag == f"{_W}p":
                paragraph = Paragraph(element, document)
                text = clean(_paragraph_text(element, document)).strip()
                level = _heading_level(paragraph.style.name if paragraph.style else "")
                if text and level:
                    headings.append((offset, level, text))
            else:
                table = Table(element, document)
                text = markdown_table([[_blocks_text(c._tc, c) for c in row.cells]
                                       for row in table.rows])
            if text:
                parts.append(text + "\n\n")
                offset += len(parts[-1])
        doc = heading_document(path, "".join(parts), headings, self.kind)
        title = clean(document.core_properties.title or "").strip()
        return Loaded([Document(doc.source, title, doc.sections, doc.key, doc.kind)
                       if title else doc])


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        number = style.removeprefix("Heading ")
        return int(number) if number.isdigit() else 0
    return 0


class PptxLoader(_PackageLoader):
    """A slide per page: its title names the section; text boxes, tables and speaker notes."""

    kind, what = "pptx", "PPTX"

    def read(self, path: Path, data: bytes) -> Loaded:
        from pptx import Presentation

        deck = Presentation(io.BytesIO(data))
        sections = []
        for number, slide in enumerate(deck.slides, 1):
            title_shape = slide.shapes.title
            title = clean(title_shape.text_frame.text).strip() if title_shape is not None else ""
            parts = [t for t in _shape_texts(slide.shapes) if t]
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = clean(slide.notes_slide.notes_text_frame.text).strip()
                parts += [f"Notes: {notes}"] if notes else []
            if parts:
                sections.append(Section("\n\n".join(parts), number, title or None))
        if not sections:
            raise LoadError("no text on any slide")
        deck_title = clean(deck.core_properties.title or "").strip()
        return Loaded([Document(str(path), deck_title or path.stem, tuple(sections), str(path),
                                self.kind)])


def _shape_texts(shapes) -> Iterator[str]:  # noqa: ANN001 - pptx shape collection
    """Text of each shape from top to bottom, left to right; groups are entered."""
    def position(shape) -> tuple[int, int]:  # noqa: ANN001
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if shape.shape_type is not None and shape.shape_type == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _shape_texts(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield markdown_table([[c.text for c in row.cells] for row in shape.table.rows])
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield clean(shape.text_frame.text).strip()


def _rows_section(rows: Iterator[list[str]], title: str | None,
                  budget: TextBudget | None = None) -> tuple[Section | None, bool]:
    """A sheet's rows (the first non-empty one is the header) as one table section, their text
    spent from ``budget``; whether rows past MAX_ROWS were left out."""
    kept: list[list[str]] = []
    for row in rows:
        if len(kept) > MAX_ROWS:
            return Section(markdown_table(kept), None, title), True
        if any(cell.strip() for cell in row):
            kept.append(row)
            if budget is not None:
                budget.spend(sum(len(cell) + 3 for cell in row))
    table = markdown_table(kept)
    return (Section(table, None, title) if table else None), False


def _cell(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


class XlsxLoader(_PackageLoader):
    """A sheet per section, named after it; rows as a table under the sheet's first row.
    Formulas give their last computed values."""

    kind, what = "xlsx", "XLSX"

    def read(self, path: Path, data: bytes) -> Loaded:
        from openpyxl import load_workbook

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sections, cut = [], []
        budget = TextBudget(self.options.max_text_mb)
        try:
            for sheet in book.worksheets:
                rows = ([_cell(v) for v in row] for row in sheet.iter_rows(values_only=True))
                section, over = _rows_section(rows, sheet.title, budget)
                sections += [section] if section else []
                cut += [sheet.title] if over else []
        finally:
            book.close()
        if not sections:
            raise LoadError("no cells with content in any sheet")
        notes = [f"sheet(s) {', '.join(cut)}: only the first {MAX_ROWS:,} rows indexed"] if cut else []
        return Loaded([Document(str(path), path.stem, tuple(sections), str(path), self.kind)],
                      notes)


class CsvLoader:
    """Rows as a table under the header row; the delimiter is detected."""

    kind = "csv"

    def __init__(self, options: LoadOptions | None = None) -> None:
        self.options = options or LoadOptions()

    def load(self, path: Path, data: bytes) -> Loaded:
        text = clean(decode_text(data))
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                text[:20_000], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
        try:
            section, over = _rows_section(iter(csv.reader(io.StringIO(text), dialect)), None)
        except csv.Error as exc:
            raise LoadError(f"malformed CSV: {exc}") from None
        if section is None:
            raise LoadError("no cells with content")
        notes = [f"only the first {MAX_ROWS:,} rows indexed"] if over else []
        return Loaded([Document(str(path), path.stem, (section,), str(path), self.kind)], notes)


class EpubLoader(_PackageLoader):
    """Chapters in reading order (the spine), each split at its headings; DRM is refused."""

    kind, what = "epub", "EPUB"

    def read(self, path: Path, data: bytes) -> Loaded:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            if "META-INF/encryption.xml" in package.namelist():
                raise LoadError("EPUB with DRM or font encryption (META-INF/encryption.xml): "
                                "its text cannot be read")
        from ebooklib import ITEM_DOCUMENT, epub

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ebooklib's FutureWarnings about its own options
            book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        sections: list[Section] = []
        for idref, _ in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ITEM_DOCUMENT:
                continue
            try:
                chapter = html_document(path, item.get_content().decode("utf-8", "replace"),
                                        self.kind)
            except LoadError:
                continue  # a cover or an empty page
            sections += chapter.sections
        if not sections:
            raise LoadError("no text in any chapter")
        titles = book.get_metadata("DC", "title")
        title = clean(titles[0][0]).strip() if titles else ""
        return Loaded([Document(str(path), title or path.stem, tuple(sections), str(path),
                                self.kind)])


OFFICE_LOADERS = {loader.kind: loader for loader in (
    DocxLoader, PptxLoader, XlsxLoader, CsvLoader, EpubLoader)}
