"""Loaders turn one file into Documents. The type is detected from the content, not only the name."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.ocr import Tesseract, fit_for_ocr, ocr_engine, render_for_ocr
from rag.core.errors import LoadError, OcrError
from rag.core.protocols import Loader
from rag.core.types import Document, Loaded, Section

MARKDOWN_EXT = {".md", ".markdown", ".mdx", ".mdown"}
HTML_EXT = {".html", ".htm", ".xhtml"}
PACKAGES = {  # ZIP-based formats, by the MIME type filetype reads from their contents
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/epub+zip": "epub",
}
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
IMAGE_TYPES = {"image/png", "image/jpeg", "image/tiff", "image/webp", "image/bmp", "image/gif"}


# Compatibility characters that only change how letters are drawn: Latin ligatures (U+FB00-06:
# to BM25 "\ufb01rst" is not "first"), Hebrew and Arabic presentation forms, full-width forms,
# no-break and typographic spaces. NFKC maps them to the letters they stand for. Other
# compatibility characters (superscripts, fractions, circled digits) carry meaning and stay.
_PRESENTATION = re.compile("[\u00a0\u2000-\u200a\u202f\u205f\ufb00-\ufdff\ufe70-\ufefe"
                           "\uff01-\uffef]+")


def clean(text: str) -> str:
    """NFC with presentation forms unfolded, no NULs, stray control characters or lone
    surrogates (from broken PDF fonts or JSON escapes; SQLite cannot store them); chunk spans
    index into this cleaned text."""
    text = unicodedata.normalize("NFC", text.replace("\x00", ""))
    text = _PRESENTATION.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]", _blank, text)


_HYPHENATED = re.compile(r"(\w+)-[ \t]*\r?\n[ \t]*(\w+)")
_COMPOUND = re.compile(r"\b(\w+)-(\w+)\b")


_PRIVATE = re.compile("[\ue000-\uf8ff]")
LIGATURES = ("fi", "ff", "fl", "ffi", "ffl")  # TeX's f-ligatures, most frequent first
KNOWN_ZIPF = 1.5  # wordfreq's scale: 1.5 is about once per 30 million words


def recover_ligatures(pages: list[str]) -> tuple[list[str], dict[str, str]]:
    """Private-use code points that a PDF font gives its ligature glyphs (a TeX font with no
    ToUnicode entry for them: the Attention paper's "fi" is U+E000 to every extractor) mapped back
    to letters. For each code point, the ligature that turns the most of the words it occurs in
    into known English words (wordfreq; counted in letters, so long words weigh more than short
    accidental ones like "stat") wins if it explains at least half; code points no ligature
    explains (symbols, math) stay."""
    codes = {c for page in pages for c in _PRIVATE.findall(page)}
    if not codes:
        return pages, {}
    from wordfreq import zipf_frequency

    found: dict[str, str] = {}
    for code in sorted(codes):
        words = {w for page in pages for w in re.findall(f"[^\\W\\d_]*{code}[^\\W\\d_]*", page)
                 if len(w) > 1}
        if not words:
            continue
        letters = sum(len(w) for w in words)
        share = {lig: sum(len(w) for w in words if zipf_frequency(w.replace(code, lig), "en")
                          >= KNOWN_ZIPF) / letters for lig in LIGATURES}
        best = max(LIGATURES, key=share.__getitem__)  # ties: the more frequent ligature
        if share[best] >= 0.5:
            found[code] = best
    if found:
        table = str.maketrans(found)
        pages = [page.translate(table) for page in pages]
    return pages, found


def dehyphenate(pages: list[str]) -> list[str]:
    """Words broken at line ends ("transduc-\\ntion") rejoined, in text laid out in lines (PDF
    pages, OCR). A compound the document also writes with its hyphen inside a line ("self-
    attention") keeps it; a break before a capital or a digit is not a word break and stays."""
    compounds = {m.group().lower() for page in pages for m in _COMPOUND.finditer(page)}

    def join(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        if not (left[-1].isalpha() and right[0].islower()):
            return m.group()
        hyphen = "-" if f"{left}-{right}".lower() in compounds else ""
        return f"{left}{hyphen}{right}"

    return [_HYPHENATED.sub(join, page) for page in pages]


def _blank(match: re.Match[str]) -> str:
    return "\ufffd" if match.group() >= "\ud800" else " "


def decode_text(data: bytes) -> str:
    """UTF-8 first; otherwise charset-normalizer's best guess; binary data is refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary content, not text")
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    if best is None:
        raise LoadError("not UTF-8 and no text encoding could be detected")
    # Equally plausible single-byte guesses: prefer windows-1252, the web's Latin default.
    for match in results:
        if match.encoding == "cp1252" and match.chaos <= best.chaos:
            return str(match)
    return str(best)


def detect_kind(path: Path, data: bytes) -> str:
    """pdf, image, docx, pptx, xlsx, epub, csv, html, markdown, beir, text; raises LoadError
    for empty or unsupported content."""
    if not data.strip():
        raise LoadError("empty file (0 bytes of content)")
    if b"%PDF-" in data[:1024]:
        return "pdf"
    import filetype

    if data.startswith(OLE2):
        raise LoadError("password-protected Office file, or an old binary .doc/.xls/.ppt: "
                        "save it as .docx/.xlsx/.pptx without a password to index it")
    guessed = filetype.guess(data[:8192])
    if guessed is not None and guessed.mime in IMAGE_TYPES:
        return "image"
    if guessed is not None and guessed.mime in PACKAGES:
        return PACKAGES[guessed.mime]
    ext = path.suffix.lower()
    if guessed is not None and guessed.mime == "application/zip" and ext[1:] in PACKAGES.values():
        return ext[1:]  # a damaged package: its loader says what is wrong
    if guessed is not None:
        raise LoadError(f"unsupported file type: {guessed.mime}")
    head = data[:4096]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("unsupported binary file")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if ext in HTML_EXT or start.startswith((b"<!doctype html", b"<html")):
        return "html"
    if ext in {".jsonl", ".json"} and _looks_like_beir(data):
        return "beir"
    if ext in MARKDOWN_EXT:
        return "markdown"
    if ext in {".csv", ".tsv"}:
        return "csv"
    return "text"


def _looks_like_beir(data: bytes) -> bool:
    first = data.lstrip().split(b"\n", 1)[0]
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and "_id" in row and "text" in row


@dataclass(frozen=True)
class LoadOptions:
    """What the job's settings change in loading (sent to the parser process with each file)."""

    max_pages: int = 0  # 0: no limit (PDF pages, image frames)
    ocr: str = "auto"  # auto (when an engine is installed) | tesseract | off
    ocr_languages: str = "eng"
    ocr_page_timeout_s: float = 60.0  # CPU seconds of one page's OCR
    pdf_tables: bool = True
    max_unzipped_mb: int = 256  # what a ZIP package (DOCX, PPTX, XLSX, EPUB) may inflate to


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
        engine = _engine(self.options)
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
    from ingest.pdf_tables import find_tables, place, ruled_pages

    try:
        tables = find_tables(data, ruled_pages(data), alive)
    except Exception as exc:  # pdfplumber/pdfminer raise many types on odd files
        return [f"tables not detected ({type(exc).__name__}: {exc}); their text is kept as lines"]
    for table in tables:
        texts[table.page - 1] = place(texts[table.page - 1], table)
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


def _engine(options: LoadOptions) -> Tesseract | None:
    try:
        return ocr_engine(options.ocr, options.ocr_languages, options.ocr_page_timeout_s)
    except OcrError as exc:
        raise LoadError(str(exc)) from None


class ImageLoader:
    """A picture's text by OCR: PNG, JPEG, WebP, BMP, GIF, and TIFF (a page per frame). Frames
    are decoded one at a time, and a file whose frames would decode to more than
    ``MAX_FILE_PIXELS`` in all is refused before any is decoded (a few KB of GIF can declare
    hundreds of screen-sized frames)."""

    kind = "image"
    MAX_PIXELS = 100_000_000  # per frame: larger is a decompression bomb, not a photo of a page
    MAX_FILE_PIXELS = 4_000_000_000  # all frames: about 450 A4 pages scanned at 300 dpi

    def __init__(self, options: LoadOptions = LoadOptions(),
                 alive: Callable[[], None] = lambda: None) -> None:
        self.options, self.alive = options, alive

    def load(self, path: Path, data: bytes) -> Loaded:
        import io

        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(data))
            frames = self._check(image)
        except Image.DecompressionBombError:
            raise LoadError(f"image over the limit of {self.MAX_PIXELS:,} pixels (a "
                            "decompression bomb, not a photo of a page)") from None
        except UnidentifiedImageError:
            raise LoadError("unreadable image: damaged, or not a format Pillow reads") from None
        except (OSError, EOFError, ValueError) as exc:
            raise LoadError(f"unreadable image: {exc}") from None
        engine = _engine(self.options)
        if engine is None:
            raise LoadError("image file: its text needs OCR, and " + (
                "ingest.ocr is off" if self.options.ocr == "off"
                else "no OCR engine is installed (apt-get install tesseract-ocr)"))
        sections, failed = [], []
        for number in range(1, frames + 1):
            try:
                image.seek(number - 1)
                frame = fit_for_ocr(image)  # decodes this frame only
            except (OSError, EOFError, ValueError) as exc:
                failed.append(f"frame {number}: unreadable image ({exc})")
                continue
            try:
                text = clean(engine.read(frame).text)
            except OcrError as exc:
                failed.append(f"frame {number}: OCR failed ({exc})")
                continue
            finally:
                self.alive()
            if text.strip():
                page = number if frames > 1 else None
                sections.append(Section(text=dehyphenate([text])[0], page=page))
        if not sections:
            raise LoadError("; ".join(failed) or "OCR found no text in the image")
        doc = Document(str(path), path.stem, tuple(sections), str(path), self.kind)
        return Loaded([doc], failed)

    def _check(self, image) -> int:  # noqa: ANN001 - a PIL image, not yet decoded
        """The number of frames, after checking the declared sizes against the limits."""
        width, height = image.size
        if width * height > self.MAX_PIXELS:
            raise LoadError(f"image of {width:,} x {height:,} pixels is over the limit of "
                            f"{self.MAX_PIXELS:,} pixels (a decompression bomb, not a photo of a "
                            "page)")
        frames = int(getattr(image, "n_frames", 1))
        if self.options.max_pages and frames > self.options.max_pages:
            raise LoadError(f"image has {frames:,} frames, over the limit of "
                            f"{self.options.max_pages:,} (ingest.max_pages)")
        if frames * width * height > self.MAX_FILE_PIXELS:
            raise LoadError(f"{frames:,} frames of {width:,} x {height:,} pixels are over "
                            f"{self.MAX_FILE_PIXELS / 1e6:,.0f} megapixels in all (a decompression "
                            "bomb, not a scan)")
        return frames


class MarkdownLoader:
    """One section per heading, titled with the heading path (``Install > From source``)."""

    kind = "markdown"

    def load(self, path: Path, data: bytes) -> Loaded:
        text = clean(decode_text(data))
        return Loaded([heading_document(path, text, _markdown_headings(text), self.kind)])


def _markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(char offset, level, title) of each heading, via markdown-it's parser (not regexes)."""
    from markdown_it import MarkdownIt

    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    tokens = MarkdownIt("commonmark").parse(text)
    headings = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            title = tokens[i + 1].content.strip()
            headings.append((line_starts[tok.map[0]], int(tok.tag[1]), title))
    return headings


def heading_document(
    path: Path, text: str, headings: list[tuple[int, int, str]], kind: str
) -> Document:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, "")] + headings + [(len(text), 0, "")]
    doc_title = next((t for _, level, t in headings if level == 1), "") or path.stem
    for (start, level, title), (end, _, _) in zip(bounds, bounds[1:], strict=False):
        if level:
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title)]
        body = text[start:end]
        if body.strip():
            name = " > ".join(t for _, t in stack) or None
            sections.append(Section(text=body, page=None, title=name))
    if not sections:
        raise LoadError("no text content")
    return Document(str(path), doc_title, tuple(sections), str(path), kind)


MARK = "\ue000"  # private-use character marking headings inside extracted HTML text


class HtmlLoader:
    """Main text via BeautifulSoup (boilerplate elements dropped), split into heading sections;
    tables become Markdown tables."""

    kind = "html"

    def load(self, path: Path, data: bytes) -> Loaded:
        return Loaded([html_document(path, decode_text(data), self.kind)])


HTML_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg",
             "template", "iframe"]


def html_document(path: Path, html: str, kind: str) -> Document:
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # XHTML reads well as HTML
        soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    main = next((tag for name in ("main", "article") for tag in soup.find_all(name)
                 if not tag.find_parent(HTML_DROP)), None) or soup.body or soup
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in _html_text(main).splitlines()]
    text = clean(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())
    headings, plain, pos, offset = [], [], 0, 0
    for match in re.finditer(f"{MARK}(\\d){MARK}(.*?){MARK}", text):
        plain.append(text[pos:match.start()])
        offset += len(plain[-1])
        heading = match.group(2)
        headings.append((offset, int(match.group(1)), heading))
        plain.append(heading)
        offset += len(heading)
        pos = match.end()
    plain.append(text[pos:])
    body = "".join(plain)
    if not body.strip():
        raise LoadError("HTML page has no text content")
    doc = heading_document(path, body, headings, kind)
    return Document(doc.source, title, doc.sections, doc.key, doc.kind) if title else doc


_HEADING = re.compile(r"^h[1-6]$")


def _html_text(main) -> str:  # noqa: ANN001 - a bs4 Tag
    """The text of ``main`` in one pass over its tree, its strings joined by newlines: dropped
    elements (scripts, navigation) skipped, headings marked (``MARK``), each outermost table as a
    Markdown table (a table nested in a cell is that cell's text). Nothing in the tree is
    replaced, so the cost stays linear in the page (bs4's ``replace_with`` is linear in the
    siblings, quadratic over thousands of headings; markdown nested in markdown is quadratic in
    the nesting depth)."""
    from bs4 import CData, NavigableString, Tag

    pieces: list[str] = []
    node = main.next_element
    end = _after(main)
    while node is not None and node is not end:
        if isinstance(node, Tag):
            if node.name in HTML_DROP:
                node = _after(node)
            elif _HEADING.match(node.name):
                pieces.append(f"\n{MARK}{node.name[1]}{MARK}{node.get_text(' ', strip=True)}{MARK}\n")
                node = _after(node)
            elif node.name == "table":
                rows = [[cell.get_text(" ", strip=True)
                         for cell in tr.find_all(["th", "td"], recursive=False)]
                        for tr in _table_rows(node)]
                pieces.append(f"\n\n{markdown_table(rows)}\n\n")
                node = _after(node)
            else:
                node = node.next_element
        else:
            if type(node) in (NavigableString, CData):
                pieces.append(str(node))
            node = node.next_element
    return "\n".join(pieces)


def _after(tag):  # noqa: ANN001, ANN202 - bs4 elements
    """The element that follows ``tag`` and everything inside it."""
    last = tag
    while getattr(last, "contents", None):
        last = last.contents[-1]
    return last.next_element


def _table_rows(table):  # noqa: ANN001, ANN202 - bs4 Tags
    """The table's own rows (directly, or in its thead/tbody/tfoot), not those of tables nested
    in its cells."""
    for child in table.find_all(["tr", "thead", "tbody", "tfoot"], recursive=False):
        if child.name == "tr":
            yield child
        else:
            yield from child.find_all("tr", recursive=False)


def markdown_table(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as a Markdown table, one row per line: what the chunker
    keeps whole and heads with its column names. Empty rows are dropped; short rows padded."""
    def cell(value: str) -> str:
        return " ".join(clean(str(value)).split()).replace("|", "\\|")

    rows = [[cell(v) for v in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


class TextLoader:
    kind = "text"

    def load(self, path: Path, data: bytes) -> Loaded:
        text = clean(decode_text(data))
        if not text.strip():
            raise LoadError("no text content")
        return Loaded([Document(str(path), path.stem, (Section(text=text),), str(path), self.kind)])


class BeirLoader:
    """BEIR ``corpus.jsonl``: one Document per line, keyed by ``_id``; bad lines are reported."""

    kind = "beir"

    def load(self, path: Path, data: bytes) -> Loaded:
        bad: list[int] = []
        docs: list[Document] = []
        for number, line in enumerate(decode_text(data).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key, body = clean(str(row["_id"])), clean(str(row.get("text") or ""))
            except (ValueError, KeyError, TypeError):
                bad.append(number)
                continue
            title = clean(str(row.get("title") or ""))
            if not (body.strip() or title.strip()):
                bad.append(number)
                continue
            docs.append(Document(str(path), title, (Section(text=body or title),), key, self.kind))
        if not docs:
            raise LoadError("no valid BEIR rows ({_id, title, text} per line)")
        warnings = [f"{len(bad)} malformed line(s) skipped, first at line {bad[0]}"] if bad else []
        return Loaded(docs, warnings)


LOADERS: dict[str, Loader] = {
    loader.kind: loader
    for loader in (PdfLoader(), MarkdownLoader(), HtmlLoader(), TextLoader(), BeirLoader())
}


def load_file(path: Path, data: bytes, options: LoadOptions = LoadOptions(),
              alive: Callable[[], None] = lambda: None) -> Loaded:
    """Detect the type and parse; raises LoadError with a specific reason. ``alive`` is called
    after each OCR'd page: a long scan is slow, not stuck."""
    kind = detect_kind(path, data)
    if kind == "pdf":
        return PdfLoader(options, alive).load(path, data)
    if kind == "image":
        return ImageLoader(options, alive).load(path, data)
    if kind not in LOADERS:
        from ingest.office import OFFICE_LOADERS

        return OFFICE_LOADERS[kind](options).load(path, data)
    return LOADERS[kind].load(path, data)
