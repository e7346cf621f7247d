"""Tables in PDF pages kept as tables. A text layer gives a table as lines of run-together
cells ("Transformer (big) 28.4 41.8"); the chunker keeps a Markdown table's rows whole and heads
each chunk with the column names, so "what BLEU did the big Transformer get" finds its row.

A table is found where horizontal rules of one width are stacked on a page (booktabs' top, mid
and bottom rules, or the row lines of a ruled grid): pdfplumber finds its columns from vertical
rules or from where the words line up, and rows above the second rule form the header. Pages
without such rules are not opened with pdfplumber at all (it is slow: ~0.15 s a page), so
text-only PDFs cost one pdfium pass."""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ingest.text import clean, markdown_table

RULE_HEIGHT = 2.0  # pt: thicker shapes are boxes or bars, not rules
RULE_WIDTH = 40.0  # pt: shorter ones are underlines, cmidrules, math bars
RULE_ASPECT = 20  # a rule is at least this many times longer than thick
SAME_EDGE = 2.0  # pt: rules of one table start and end within this of each other
MAX_ROW_GAP = 250.0  # pt between two rules of one table
MIN_HEIGHT = 12.0  # pt from the first rule to the last: at least a row between them
WORDS = dict(x_tolerance_ratio=0.15)  # word gaps relative to the font size: tight TeX kerning
LOCATED = 0.6  # share of a table's words that its lines in the text layer must hold


@dataclass(frozen=True)
class PdfTable:
    page: int  # 1-based
    rows: list[list[str]]  # header first

    def markdown(self) -> str:
        return markdown_table(self.rows)


def ruled_pages(data: bytes) -> list[int]:
    """Pages (1-based) with at least two horizontal rules of one width: where a table may be."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = pdfium.PdfDocument(data)
    try:
        found = []
        for number, page in enumerate(pdf, start=1):
            widths = Counter()
            for obj in page.get_objects([pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=3):
                left, bottom, right, top = obj.get_bounds()
                # In the object's own space (a form may scale it): a long thin shape.
                if right - left >= RULE_WIDTH and (top - bottom) * RULE_ASPECT <= right - left:
                    widths[round(left), round(right)] += 1
            if any(n >= 2 for n in widths.values()):
                found.append(number)
        return found
    finally:
        pdf.close()


def find_tables(data: bytes, pages: list[int],
                alive: Callable[[], None] = lambda: None) -> list[PdfTable]:
    """The tables on ``pages`` (1-based), in page order; ``alive`` is called after each page."""
    if not pages:
        return []
    import pdfplumber

    # pdfminer logs every font it cannot fully parse; the text layer came from pypdf anyway.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    found = []
    with pdfplumber.open(io.BytesIO(data), pages=pages) as pdf:
        for page in pdf.pages:
            alive()
            for region, header_end in _rule_regions(page):
                rows = _rows(page.crop(region, strict=False), header_end)
                if rows:
                    found.append(PdfTable(page.page_number, rows))
    return found


def _rule_regions(page) -> list[tuple[tuple[float, float, float, float], float]]:  # noqa: ANN001
    """(bounding box, top of the second rule) per stack of same-width horizontal rules."""
    edges = sorted((e for e in page.horizontal_edges if e["x1"] - e["x0"] >= RULE_WIDTH),
                   key=lambda e: (round(e["x0"]), round(e["x1"]), e["top"]))
    stacks: list[list[dict]] = []
    for edge in edges:
        last = stacks[-1][-1] if stacks else None
        if (last is not None and abs(last["x0"] - edge["x0"]) <= SAME_EDGE
                and abs(last["x1"] - edge["x1"]) <= SAME_EDGE
                and edge["top"] - last["top"] <= MAX_ROW_GAP):
            if edge["top"] - last["top"] > RULE_HEIGHT:  # a thick rule's two edges are one rule
                stacks[-1].append(edge)
        else:
            stacks.append([edge])
    return [((s[0]["x0"] - 1, s[0]["top"] - 1, s[0]["x1"] + 1, s[-1]["bottom"] + 1), s[1]["top"])
            for s in stacks if len(s) >= 2 and s[-1]["top"] - s[0]["top"] >= MIN_HEIGHT]


def _rows(region, header_end: float) -> list[list[str]]:  # noqa: ANN001 - pdfplumber page
    """Cells of the table in ``region``, each word whole in the cell nearest its centre; empty
    rows and columns dropped; rows above ``header_end`` joined into one header row. [] when it
    is not a table of two columns."""
    # Columns from the vertical rules, or from where the words line up (booktabs has no vertical
    # rules; some tables rule only a few columns): whichever finds more. Rows from the lines of
    # text (a ruled row may hold several).
    found = [t for columns in ("lines", "text") for t in region.find_tables(
        {"vertical_strategy": columns, "horizontal_strategy": "text",
         "text_x_tolerance_ratio": 0.15}) if len(t.columns) >= 2]
    if not found:
        return []
    table = max(found, key=lambda t: len(t.columns))
    bands = [(row.bbox[1], row.bbox[3], [c for c in row.cells if c is not None])
             for row in table.rows]
    bands = [band for band in bands if band[2]]
    if not bands:
        return []
    # Header lines the alignment left out (a spanning "BLEU" over two columns) go over the
    # first row's columns.
    bands.insert(0, (region.bbox[1], bands[0][0], bands[0][2]))
    words = region.extract_words(**WORDS)
    cells_text: list[list[str]] = []
    for top, bottom, cells in bands:
        texts: list[list[str]] = [[] for _ in cells]
        for word in words:
            if top <= (word["top"] + word["bottom"]) / 2 < bottom:
                centre = (word["x0"] + word["x1"]) / 2
                index = min(range(len(cells)), key=lambda i: _distance(cells[i], centre))
                texts[index].append(word["text"])
        cells_text.append([" ".join(t) for t in texts])
    width = max(len(row) for row in cells_text)
    used = [i for i in range(width) if any(i < len(row) and row[i] for row in cells_text)]
    grid = [[row[i] if i < len(row) else "" for i in used] for row in cells_text]
    above = [bottom <= header_end + 1 for _, bottom, _ in bands]
    head = [row for row, up in zip(grid, above, strict=True) if up and any(row)]
    body = [row for row, up in zip(grid, above, strict=True) if not up and any(row)]
    if head:
        header = [" ".join(part for part in column if part) for column in zip(*head, strict=True)]
    elif body:
        header, body = body[0], body[1:]
    else:
        return []
    multi = sum(1 for row in body if sum(1 for cell in row if cell) >= 2)
    if len(used) < 2 or multi < 2 or multi < len(body) / 2:
        return []  # a framed paragraph or a figure, not a table
    return [header] + body


def _distance(cell: tuple[float, float, float, float], x: float) -> float:
    return 0.0 if cell[0] <= x < cell[2] else min(abs(cell[0] - x), abs(cell[2] - x))


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", clean(text).lower())


def place(text: str, table: PdfTable) -> str:
    """``text`` (a page's text layer) with the lines that hold the table replaced by it as a
    Markdown table; where no run of lines holds most of its words, the table is appended."""
    table_md = table.markdown()
    wanted = Counter(t for row in table.rows for cell in row for t in _tokens(cell))
    total = sum(wanted.values())
    lines = text.split("\n")
    best, best_span, start, held = 0, None, None, Counter()
    for i, line in enumerate(lines):
        if line.startswith("|"):  # a table placed before this one on the page stays whole
            start = None
            continue
        tokens = _tokens(line)
        if not tokens and start is not None:  # "...", "·": inside a table, as in any text
            continue
        if sum(1 for t in tokens if t in wanted) >= LOCATED * len(tokens) > 0:
            if start is None:
                start, held = i, Counter()
            held.update(tokens)
            covered = sum((held & wanted).values())
            if covered > best:
                best, best_span = covered, (start, i + 1)
        else:
            start = None
    if best_span is None or best < LOCATED * total:
        return f"{text.rstrip()}\n\n{table_md}\n"
    a, b = best_span
    return "\n".join(lines[:a] + [table_md] + lines[b:])
