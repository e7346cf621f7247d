"""Render a cited PDF page as an image with the cited passage marked, so a reader can check a
claim against the page itself. pdfium's text layer is matched to our (pypdf) chunk text on
letters and digits only, which survives their differences in spacing, hyphenation and ligatures."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.chunking import sentence_spans

PASSAGE = (255, 230, 0, 70)  # translucent yellow under the whole cited passage
EVIDENCE = (255, 120, 0, 110)  # stronger orange under the sentence that supports the claim
MIN_MATCH = 12  # normalised characters; shorter pieces match too easily by chance
MAX_PIXELS = 4_000_000  # a page of any declared size renders to at most this (16 MB as RGBA)


class PageRenderError(RuntimeError):
    """The page cannot be shown (file moved, not a PDF, no such page); the message says which."""


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
        marked, notes = 0, []
        for colour, pieces in ((PASSAGE, [passage]), (EVIDENCE, list(evidence))):
            for piece in pieces:
                spans = find_spans(page_text, piece)
                marked += bool(spans)
                for a, b in spans:
                    for i in range(text.count_rects(a, b - a)):
                        x0, y0, x1, y1 = text.get_rect(i)
                        draw.rectangle([(x0 - left) * scale, (top - y1) * scale,
                                        (x1 - left) * scale, (top - y0) * scale], fill=colour)
        wanted = 1 + len(evidence)
        if not page_text.strip():
            notes.append("this page has no text layer (a scan?): nothing can be marked")
        elif marked < wanted:
            notes.append("the text layer differs from the indexed text: not every part is marked")
        out = io.BytesIO()
        Image.alpha_composite(image, overlay).convert("RGB").save(out, format="PNG")
        return RenderedPage(out.getvalue(), image.width, image.height, marked, wanted, notes)
    finally:
        pdf.close()
