"""Loaders turn one file into Documents. The type is detected from the content, not only the name."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rag.types import Document, Section

MARKDOWN_EXT = {".md", ".markdown", ".mdx", ".mdown"}
HTML_EXT = {".html", ".htm", ".xhtml"}


class LoadError(Exception):
    """This file cannot be indexed; the message is the specific reason shown to the user."""


@dataclass
class Loaded:
    """What one file yielded, and what went wrong in it short of failing it as a whole."""

    documents: list[Document]
    warnings: list[str] = field(default_factory=list)


class Loader(Protocol):
    """Parses the bytes of one file (already type-detected) into one or more Documents."""

    kind: str

    def load(self, path: Path, data: bytes) -> Loaded: ...


def clean(text: str) -> str:
    """NFC, no NULs, stray control characters or lone surrogates (from broken PDF fonts or JSON
    escapes; SQLite cannot store them); chunk spans index into this cleaned text."""
    text = unicodedata.normalize("NFC", text.replace("\x00", ""))
    return re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]", _blank, text)


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
    """pdf, html, markdown, beir, text; raises LoadError for empty or unsupported content."""
    if not data.strip():
        raise LoadError("empty file (0 bytes of content)")
    if b"%PDF-" in data[:1024]:
        return "pdf"
    import filetype

    guessed = filetype.guess(data[:8192])
    if guessed is not None:
        raise LoadError(f"unsupported file type: {guessed.mime}")
    head = data[:4096]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("unsupported binary file")
    ext = path.suffix.lower()
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if ext in HTML_EXT or start.startswith((b"<!doctype html", b"<html")):
        return "html"
    if ext in {".jsonl", ".json"} and _looks_like_beir(data):
        return "beir"
    if ext in MARKDOWN_EXT:
        return "markdown"
    return "text"


def _looks_like_beir(data: bytes) -> bool:
    first = data.lstrip().split(b"\n", 1)[0]
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and "_id" in row and "text" in row


class PdfLoader:
    """pypdf text per page; outline entries name sections; image-only pages are reported."""

    kind = "pdf"

    def __init__(self, max_pages: int = 0) -> None:
        self.max_pages = max_pages

    def load(self, path: Path, data: bytes) -> Loaded:
        import io

        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("encrypted PDF: it needs a password (the empty one failed)")
            pages = list(reader.pages)
        except LoadError:
            raise
        except Exception as exc:  # pypdf raises many types on damaged files
            if isinstance(exc, PdfReadError) or "EOF" in str(exc) or "xref" in str(exc):
                raise LoadError(f"corrupt or truncated PDF: {exc}") from exc
            if "cryptography" in str(exc) or "AES" in str(exc):
                raise LoadError(f"encrypted PDF: cannot decrypt ({exc})") from exc
            raise LoadError(f"unreadable PDF: {exc}") from exc
        if not pages:
            raise LoadError("PDF has no pages")
        if self.max_pages and len(pages) > self.max_pages:
            raise LoadError(f"PDF has {len(pages)} pages, over the limit of {self.max_pages} "
                            "(ingest.max_pages)")
        outline = _outline(reader)
        sections, empty, sparse, warnings = [], [], [], []
        for number, page in enumerate(pages, start=1):
            try:
                text = clean(page.extract_text() or "")
            except Exception as exc:
                warnings.append(f"page {number}: text extraction failed ({exc})")
                continue
            if not text.strip():
                empty.append(number)
                continue
            if len(text.strip()) < 200 and _has_images(page):
                sparse.append(number)
            sections.append(Section(text=text, page=number, title=_section_at(outline, number)))
        if not sections:
            raise LoadError(
                f"no text layer on any of its {len(pages)} page(s): scanned or image-only PDF "
                "(OCR is not supported)"
            )
        if empty:
            warnings.append(f"no text layer on page(s) {_ranges(empty)} (image-only; skipped)")
        if sparse:
            warnings.append(
                f"page(s) {_ranges(sparse)} are mostly images with little text (scanned? "
                "OCR is not supported)"
            )
        doc = Document(str(path), _pdf_title(reader) or path.stem, tuple(sections), str(path),
                       self.kind)
        return Loaded([doc], warnings)


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


class MarkdownLoader:
    """One section per heading, titled with the heading path (``Install > From source``)."""

    kind = "markdown"

    def load(self, path: Path, data: bytes) -> Loaded:
        text = clean(decode_text(data))
        return Loaded([_heading_document(path, text, _markdown_headings(text), self.kind)])


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


def _heading_document(
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
    """Main text via BeautifulSoup (boilerplate elements dropped), split into heading sections."""

    kind = "html"
    DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg",
            "template", "iframe"]

    def load(self, path: Path, data: bytes) -> Loaded:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(decode_text(data), "lxml")
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
        for tag in soup(self.DROP):
            tag.decompose()
        main = soup.find("main") or soup.find("article") or soup.body or soup
        for h in main.find_all(re.compile(r"^h[1-6]$")):
            heading = h.get_text(" ", strip=True)
            h.replace_with(f"\n{MARK}{h.name[1]}{MARK}{heading}{MARK}\n")
        raw = main.get_text("\n")
        lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in raw.splitlines()]
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
        doc = _heading_document(path, body, headings, self.kind)
        if title:
            doc = Document(doc.source, title, doc.sections, doc.key, doc.kind)
        return Loaded([doc])


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


def load_file(path: Path, data: bytes, max_pages: int = 0) -> Loaded:
    """Detect the type and parse; raises LoadError with a specific reason."""
    kind = detect_kind(path, data)
    if kind == "pdf" and max_pages:
        return PdfLoader(max_pages).load(path, data)
    return LOADERS[kind].load(path, data)
