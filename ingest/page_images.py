"""Render a cited PDF page as an image with the cited passage marked, so a reader can check a
claim against the page itself. pdfium's text layer is matched to our (pypdf) chunk text on
letters and digits only, which survives their differences in spacing, hyphenation and ligatures."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag.core.errors import PageRenderError
from rag.core.text import sentence_spans

PASSAGE = (255, 230, 0, 70)  # translucent yellow under the whole cited passage
EVIDENCE = (255, 120, 0, 110)  # stronger orange under the sentence that supports the claim
MIN_MATCH = 12  # normalised characters; shorter pieces match too easily by chance
MAX_PIXELS = 4_000_000  # a page of any declared size renders to at most this (16 MB as RGBA)


@dataclass
class RenderedPage:
    png: bytes
    width: int
    height: int
    marked: int  # passages (or passage sentences) found and marked on the page
    wanted: int
    notes: list[str] = field(default_factory=list)


def _normalise(text: str) -> tuple[str, list[int]]:
    """Lower-case letters and digits of ``text`` with each one's index in the original."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch):
            if c.isalnum():
                chars.append(c.lower())
                where.append(i)
    return "".join(chars), where


def find_spans(page_text: str, passage: str) -> list[tuple[int, int]]:
    """Character ranges of ``page_text`` holding ``passage``: whole if it matches, else sentence
    by sentence (a passage may straddle a figure or a column break)."""
    norm, where = _normalise(page_text)
    pieces = [passage] + [passage[a:b] for a, b in sentence_spans(passage)]
    spans: list[tuple[int, int]] = []
    for piece in pieces:
        target, _ = _normalise(piece)
        if len(target) < MIN_MATCH:
            continue
        at = norm.find(target)
        if at >= 0:
            spans.append((where[at], where[at + len(target) - 1] + 1))
            if piece is passage:
                break
    return spans


Box = tuple[float, float, float, float]


def _pdf_box(rect: Box, left: float, top: float, scale: float) -> Box:
    x0, y0, x1, y1 = rect
    return ((x0 - left) * scale, (top - y1) * scale, (x1 - left) * scale, (top - y0) * scale)


def _mark(draw, pieces: Sequence[tuple[tuple[int, ...], str]],  # noqa: ANN001 - ImageDraw
          boxes: Callable[[str], list[Box]]) -> int:
    """Fills the boxes of each piece in its colour; returns how many pieces were found."""
    found = 0
    for colour, piece in pieces:
        rects = boxes(piece)
        found += bool(rects)
        for rect in rects:
            draw.rectangle(list(rect), fill=colour)
    return found


def _ocr_boxes(pg, scale: float) -> Callable[[str], list[Box]] | None:  # noqa: ANN001
    """Finds pieces in the page's OCR words (boxes scaled to the rendered image), or None
    without an OCR engine."""
    from ingest.ocr import ocr_engine, render_for_ocr
    from rag.core.errors import OcrError

    engine = ocr_engine("auto")
    if engine is None:
        return None
    image = render_for_ocr(pg)
    try:
        words = engine.read(image).words
    except OcrError:
        return None
    ratio = scale / (image.width / pg.get_size()[0])
    joined, starts = "", []
    for word in words:
        starts.append(len(joined))
        joined += word.text + " "

    def boxes(piece: str) -> list[Box]:
        out = []
        for a, b in find_spans(joined, piece):
            for word, start in zip(words, starts, strict=True):
                if start < b and start + len(word.text) > a:
                    out.append(tuple(v * ratio for v in word.box))
        return out  # type: ignore[return-value]
    return boxes


def render_page(path: str | Path, page: int, passage: str, evidence: Sequence[str] = (),
                scale: float = 1.5, max_pixels: int = MAX_PIXELS) -> RenderedPage:
    """PNG of 1-based ``page`` with ``passage`` marked yellow and ``evidence`` sentences orange.
    The scale shrinks so the image has at most ``max_pixels``: a tiny file may declare a huge
    page."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    path = Path(path)
    if not path.is_file():
        raise PageRenderError(f"{path} is no longer there (moved or deleted since indexing)")
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise PageRenderError(f"cannot open {path.name} as a PDF: {exc}") from None
    try:
        if not 1 <= page <= len(pdf):
            raise PageRenderError(f"{path.name} has {len(pdf)} pages, not a page {page}")
        pg = pdf[page - 1]
        width, height = pg.get_size()
        if width <= 0 or height <= 0:
            raise PageRenderError(f"{path.name}: page {page} has no area")
        scale = min(scale, (max_pixels / (width * height)) ** 0.5)
        image = pg.render(scale=scale, rotation=0).to_pil().convert("RGBA")
        text = pg.get_textpage()
        page_text = text.get_text_range()
        left, bottom, _, top = pg.get_cropbox()
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        pieces = [(PASSAGE, passage)] + [(EVIDENCE, e) for e in evidence]

        def layer_boxes(piece: str) -> list[Box]:
            return [_pdf_box(text.get_rect(i), left, top, scale)
                    for a, b in find_spans(page_text, piece)
                    for i in range(text.count_rects(a, b - a))]

        marked = _mark(draw, pieces, layer_boxes)
        wanted = 1 + len(evidence)
        notes = []
        ocr = None if marked else _ocr_boxes(pg, scale)  # a scan, or a page indexed by OCR
        if ocr is not None:
            marked = _mark(draw, pieces, ocr)
            notes += ["marked on the page's OCR text"] if marked else []
        if not marked and not page_text.strip() and ocr is None:
            notes.append("this page has no text layer (a scan?) and no OCR engine is "
                         "installed: nothing can be marked")
        elif marked < wanted:
            notes.append("the page's text differs from the indexed text: not every part is "
                         "marked")
        out = io.BytesIO()
        Image.alpha_composite(image, overlay).convert("RGB").save(out, format="PNG")
        return RenderedPage(out.getvalue(), image.width, image.height, marked, wanted, notes)
    finally:
        pdf.close()
