"""Loaders turn one file into Documents. The type is detected from the content, not only the name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ingest.images import ImageLoader
from ingest.markup import HtmlLoader, MarkdownLoader, NotebookLoader, RstLoader, TextLoader
from ingest.office import OFFICE_LOADERS
from ingest.pdf import PdfLoader
from ingest.text import TextBudget, clean, decode_text
from rag.core.errors import LoadError
from rag.core.protocols import Loader
from rag.core.types import Document, Loaded, LoadOptions, Section

MARKDOWN_EXT = {".md", ".markdown", ".mdx", ".mdown"}
RST_EXT = {".rst", ".rest"}
HTML_EXT = {".html", ".htm", ".xhtml"}
PACKAGES = {  # ZIP-based formats, by the MIME type filetype reads from their contents
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/epub+zip": "epub",
}
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
IMAGE_TYPES = {"image/png", "image/jpeg", "image/tiff", "image/webp", "image/bmp", "image/gif"}


def detect_kind(path: Path, data: bytes) -> str:
    """pdf, image, docx, pptx, xlsx, epub, csv, html, markdown, rst, notebook, beir, text;
    raises LoadError for empty or unsupported content."""
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
    if ext in RST_EXT:
        return "rst"
    if ext == ".ipynb":
        return "notebook"
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
    for loader in (PdfLoader(), MarkdownLoader(), RstLoader(), NotebookLoader(), HtmlLoader(),
                   TextLoader(), BeirLoader())
}


def load_file(path: Path, data: bytes, options: LoadOptions = LoadOptions(),
              alive: Callable[[], None] = lambda: None) -> Loaded:
    """Detect the type and parse; raises LoadError with a specific reason (also for text over
    ``options.max_text_mb``). ``alive`` is called after each OCR'd page: a long scan is slow,
    not stuck."""
    kind = detect_kind(path, data)
    if kind == "pdf":
        loaded = PdfLoader(options, alive).load(path, data)
    elif kind == "image":
        loaded = ImageLoader(options, alive).load(path, data)
    elif kind not in LOADERS:
        loaded = OFFICE_LOADERS[kind](options).load(path, data)
    else:
        loaded = LOADERS[kind].load(path, data)
    TextBudget(options.max_text_mb).spend(
        sum(len(s.text) for doc in loaded.documents for s in doc.sections))
    return loaded
