"""Files an attacker could plant, made by the tests themselves (and by bench/hostile_inputs.py):
small on disk, huge or slow once opened."""

from __future__ import annotations

import io
import zipfile

from PIL import Image, ImageDraw

from tests.documents import table_pdf, text_pdf


def gif_frame_bomb(frames: int = 400, side: int = 8000) -> bytes:
    """A few KB: a ``side`` x ``side`` logical screen and ``frames`` frames of one pixel each; a
    decoder that copies every frame onto the screen holds frames x side^2 bytes."""
    import struct

    out = bytearray(b"GIF89a" + struct.pack("<HH", side, side) + bytes([0x80, 0, 0])
                    + b"\x00\x00\x00\xff\xff\xff")  # a 2-colour global table
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # looping: an animation
    for i in range(frames):
        out += b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # 10 ms, keep the previous frame
        out += b"\x2c" + struct.pack("<HHHH", i % side, 0, 1, 1) + b"\x00"  # a 1x1 frame
        out += b"\x02\x02\x44\x01\x00"  # LZW, code size 2: clear, pixel 1, end
    return bytes(out + b"\x3b")


def docx_zip_bomb(inflated_mb: int = 1024) -> bytes:
    """A real DOCX whose document part inflates to ``inflated_mb`` MB (whitespace between its
    XML elements: a few MB on disk)."""
    import docx

    base = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("A document with a very large body.")
    document.save(base)
    out = io.BytesIO()
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                head, tail = data.split(b"<w:body>", 1)
                with dst.open(item.filename, "w", force_zip64=True) as part:
                    part.write(head + b"<w:body>")
                    block = b" " * 2**20
                    for _ in range(inflated_mb):
                        part.write(block)
                    part.write(tail)
            else:
                dst.writestr(item, data)
    return out.getvalue()


def nested_tables_html(depth: int = 30_000) -> bytes:
    """About 1 MB of tables nested ``depth`` deep."""
    return (b"<html><body>" + b"<table><tr><td>" * depth + b"deep" + b"</td></tr></table>" * depth
            + b"</body></html>")


def many_headings_html(count: int = 8000) -> bytes:
    return ("<html><body>" + "".join(f"<h2>Heading {i}</h2><p>Text {i}.</p>" for i in range(count))
            + "</body></html>").encode()


def text_frames_tiff(frames: int = 21) -> bytes:
    """A TIFF of ``frames`` pages with a line of text each: every frame is OCR'd."""
    pages = []
    for i in range(frames):
        page = Image.new("L", (1200, 300), 255)
        ImageDraw.Draw(page).text((40, 120), f"Frame number {i} of the scanned report.", fill=0,
                                  font_size=40)
        pages.append(page)
    out = io.BytesIO()
    pages[0].save(out, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    return out.getvalue()


def ruled_pdf(pages: int = 60) -> bytes:
    """``pages`` pages each with a ruled table: every page goes through table detection."""
    import pypdf

    rows = [["model", "score", "size", "time"]] + [[f"m{i}", str(i), str(2 * i), f"{i}s"]
                                                   for i in range(40)]
    one = table_pdf(["A table of results."], rows, ["After the table."], grid=True)
    writer = pypdf.PdfWriter()
    page = pypdf.PdfReader(io.BytesIO(one)).pages[0]
    for _ in range(pages):
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def many_pages_pdf(pages: int = 10_000) -> bytes:
    return text_pdf([f"Page {i}." for i in range(pages)])


def shared_string_xlsx(rows: int = 200, columns: int = 20, size: int = 2000) -> bytes:
    """A spreadsheet whose every cell holds the same long string (deflate makes the copies
    nearly free): about 8 MB of text from a file of a few KB at the defaults; 290 x 29 cells of
    30 KB come to 250 MB from 445 KB, just under ingest.max_unzipped_mb."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    text = ("word " * size)[:size]
    for r in range(1, rows + 1):
        for c in range(1, columns + 1):
            sheet.cell(row=r, column=c, value=text)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def wide_csv(columns: int = 200_000) -> bytes:
    """A header of ``columns`` names over one row of values (800 KB at the default): repeated
    before every piece of the row, the header made a 7 GB index."""
    return (",".join("a" for _ in range(columns)) + "\n" +
            ",".join("1" for _ in range(columns)) + "\n").encode()
