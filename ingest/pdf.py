"""PDF files: the text layer page by page (pypdf, pdfium when pypdf fails), the outline as
sections, ruled tables as Markdown, and OCR for pages that are scans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest import pdf_tables
from ingest.ocr import Tesseract, engine_for, render_for_ocr
from ingest.text import clean, dehyphenate, recover_ligatures
from rag.core.errors import LoadError, OcrError
from rag.core.types import Document, Loaded, LoadOptions, Section


@dataclass
class _PdfText:
    """One reader's view of a PDF: text per page (None where extraction failed), and the rest."""

    reader: str
    texts: list[str | None]
    title: str = ""
    outline: list[tuple[int, str]] = field(default_factory=list)
    images: set[int] = field(default_factory=set)  # pages that show images (1-based)
    errors: dict[int, str] = field(default_factory=dict)


class _TooManyPages(LoadError):
    """Refused by its page count: no other reader is tried."""


def _check_pages(count: int, max_pages: int) -> None:
    if max_pages and count > max_pages:
        raise _TooManyPages(f"PDF has {count} pages, over the limit of {max_pages} (ingest.max_pages)")


def _read_pypdf(data: bytes, max_pages: int = 0) -> _PdfText:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Encrypted("encrypted PDF: it needs a password (the empty one failed)")
        pages = list(reader.pages)
    except _Encrypted:
        raise
    except RecursionError:  # a page tree nested thousands deep
        raise LoadError("unreadable PDF: its page tree is nested too deeply") from None
    except Exception as exc:  # pypdf raises many types on damaged files
        if "cryptography" in str(exc) or "AES" in str(exc):
            raise _Encrypted(f"encrypted PDF: cannot decrypt ({exc})") from exc
        if isinstance(exc, PdfReadError) or "EOF" in str(exc) or "xref" in str(exc):
            raise LoadError(f"corrupt or truncated PDF: {exc}") from exc
        raise LoadError(f"unreadable PDF: {exc}") from exc
    _check_pages(len(pages), max_pages)  # before any page's text is extracted
    out = _PdfText("pypdf", [], _pdf_title(reader), _outline(reader))
    for number, page in enumerate(pages, start=1):
        try:
            out.texts.append(page.extract_text() or "")
        except Exception as exc:
            out.texts.append(None)
            out.errors[number] = str(exc)
        if _has_images(page):
            out.images.add(number)
    return out


class _Encrypted(LoadError):
    """No other reader can do better without the password."""


def _read_pdfium(data: bytes, max_pages: int = 0) -> _PdfText:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise LoadError(str(exc)) from None
    try:
        _check_pages(len(pdf), max_pages)
        toc = [(item.page_index + 1, clean(item.title).strip()) for item in pdf.get_toc()
               if item.page_index is not None]
        out = _PdfText("pdfium", [], clean(pdf.get_metadata_dict().get("Title", "")).strip(),
                       sorted(toc, key=lambda pair: pair[0]))
        for number, page in enumerate(pdf, start=1):
            out.texts.append(page.get_textpage().get_text_range().replace("\r\n", "\n"))
            if any(True for _ in page.get_objects([pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2)):
                out.images.add(number)
        return out
    except pdfium.PdfiumError as exc:  # a page it cannot load (a page tree that loops)
        raise LoadError(str(exc)) from None
    finally:
        pdf.close()


def _read_pdf(data: bytes, max_pages: int = 0) -> tuple[_PdfText, list[str]]:
    """pypdf's text; pdfium's where pypdf cannot open the file or fails on a page. A PDF over
    ``max_pages`` is refused before any text is extracted."""
    try:
        pdf = _read_pypdf(data, max_pages)
    except (_Encrypted, _TooManyPages):
        raise
    except LoadError as first:
        try:
            return _read_pdfium(data, max_pages), [f"read with pdfium: pypdf could not ({first})"]
        except LoadError as second:
            raise LoadError(f"{first}; pdfium could not read it either ({second})") from None
    if not pdf.errors:
        return pdf, []
    try:
        other = _read_pdfium(data)
    except LoadError:
        return pdf, [f"page {n}: text extraction failed ({e})" for n, e in pdf.errors.items()]
    for number in pdf.errors:
        pdf.texts[number - 1] = other.texts[number - 1]
    return pdf, [f"page(s) {_ranges(sorted(pdf.errors))} read with pdfium (pypdf failed)"]


SPARSE_CHARS = 200  # a page with less text than this and images is probably a scan


class PdfLoader:
    """Text per page (pypdf, pdfium as fallback), ligatures unfolded and words broken at line
    ends rejoined; pages without a usable text layer are OCR'd when an engine is installed;
    tables between horizontal rules become Markdown tables; outline entries name sections."""

    kind = "pdf"

    def __init__(self, options: LoadOptions = LoadOptions(),
                 alive: Callable[[], None] = lambda: None) -> None:
        self.options, self.alive = options, alive

    def load(self, path: Path, data: bytes) -> Loaded:
        pdf, warnings = _read_pdf(data, self.options.max_pages)
        count = len(pdf.texts)
        if not count:
            raise LoadError("PDF has no pages")
        texts = [clean(t) if t is not None else "" for t in pdf.texts]
        scans = [n for n, t in enumerate(texts, 1) if n not in pdf.errors and (
            not t.strip() or (len(t.strip()) < SPARSE_CHARS and n in pdf.images))]
        engine = engine_for(self.options)
        if scans and engine is not None:
            warnings += self._ocr(data, engine, scans, texts)
        elif scans:
            empty = [n for n in scans if not texts[n - 1].strip()]
            sparse = [n for n in scans if texts[n - 1].strip()]
            why = ("ingest.ocr is off" if self.options.ocr == "off"
                   else "no OCR engine installed: apt-get install tesseract-ocr")
            if empty:
                warnings.append(f"no text layer on page(s) {_ranges(empty)} (image-only; "
                                f"skipped: {why})")
            if sparse:
                warnings.append(f"page(s) {_ranges(sparse)} are mostly images with little text "
                                f"(scanned? not OCR'd: {why})")
        if self.options.pdf_tables:
            warnings += _tables(data, texts, self.alive)
        texts, ligatures = recover_ligatures(texts)
        if ligatures:
            warnings.append("private-use characters read as ligatures: " + ", ".join(
                f"U+{ord(c):04X} = {lig!r}" for c, lig in sorted(ligatures.items())))
        texts = dehyphenate(texts)
        sections = [Section(text=t, page=n, title=_section_at(pdf.outline, n))
                    for n, t in enumerate(texts, 1) if t.strip()]
        if not sections:
            raise LoadError(f"no text on any of its {count} page(s): scanned or image-only PDF "
                            + ("and OCR found no text" if engine else "(no OCR engine installed)"))
        doc = Document(str(path), pdf.title or path.stem, tuple(sections), str(path), self.kind)
        return Loaded([doc], warnings)

    def _ocr(self, data: bytes, engine: Tesseract, pages: list[int], texts: list[str]) -> list[str]:
        """OCR ``pages`` in place of their text layer where it reads more text; a page that
        fails keeps its text layer and is reported."""
        import pypdfium2 as pdfium

        done, blank, failed = [], [], []
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            return [f"page(s) {_ranges(pages)}: not OCR'd, pdfium cannot render them ({exc})"]
        try:
            for number in pages:
                try:
                    page = engine.read(render_for_ocr(pdf[number - 1]))
                except (OcrError, pdfium.PdfiumError) as exc:
                    failed.append(f"page {number}: OCR failed ({exc})")
                    continue
                finally:
                    self.alive()
                if len(page.text.strip()) > len(texts[number - 1].strip()):
                    texts[number - 1] = clean(page.text)
                    done.append(number)
                elif not texts[number - 1].strip():
                    blank.append(number)
        finally:
            pdf.close()
        notes = [f"OCR ({engine.name}) on page(s) {_ranges(done)}"] if done else []
        if blank:
            notes.append(f"page(s) {_ranges(blank)}: no text layer and OCR found no text "
                         "(blank, or pictures only)")
        return notes + failed


def _tables(data: bytes, texts: list[str], alive: Callable[[], None]) -> list[str]:
    """Tables on ruled pages put in place of their lines, as Markdown tables (in place)."""

    try:
        tables = pdf_tables.find_tables(data, pdf_tables.ruled_pages(data), alive)
    except Exception as exc:  # pdfplumber/pdfminer raise many types on odd files
        return [f"tables not detected ({type(exc).__name__}: {exc}); their text is kept as lines"]
    for table in tables:
        texts[table.page - 1] = pdf_tables.place(texts[table.page - 1], table)
    pages = sorted({t.page for t in tables})
    return [f"{len(tables)} table(s) kept as tables on page(s) {_ranges(pages)}"] if pages else []


def _has_images(page) -> bool:  # noqa: ANN001 - pypdf.PageObject
    try:
        xobjects = page["/Resources"].get_object().get("/XObject")
        return bool(xobjects) and any(
            xobjects[name].get_object().get("/Subtype") == "/Image" for name in xobjects
        )
    except Exception:
        return False


def _pdf_title(reader) -> str:  # noqa: ANN001 - pypdf.PdfReader
    try:
        title = (reader.metadata or {}).get("/Title")
    except Exception:
        return ""
    title = clean(str(title or "")).strip()
    return "" if title.lower() in {"untitled", "title"} else title


def _outline(reader) -> list[tuple[int, str]]:  # noqa: ANN001
    """Flattened outline as sorted (page number, title) pairs; empty if absent or broken."""
    found: list[tuple[int, str]] = []

    def walk(items: list) -> None:  # type: ignore[type-arg]
        for item in items:
            if isinstance(item, list):
                walk(item)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:
                continue
            if page is not None and page >= 0:
                found.append((page + 1, clean(str(item.title)).strip()))

    try:
        walk(reader.outline)
    except Exception:
        return []
    return sorted(found, key=lambda pair: pair[0])


def _section_at(outline: list[tuple[int, str]], page: int) -> str | None:
    current = None
    for start, title in outline:
        if start > page:
            break
        current = title
    return current


def _ranges(numbers: list[int]) -> str:
    out, start, prev = [], numbers[0], numbers[0]
    for n in numbers[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)
