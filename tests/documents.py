"""Documents made by the tests themselves: a text PDF written object by object (so a test can
break any part of it) and pictures of text (for OCR)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont


def _escape(line: str) -> bytes:
    return b"(" + line.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(") \
        .replace(b")", b"\\)") + b")"


def text_pdf(pages: list[str], info: bytes = b"<< /Title (Made by a test) >>") -> bytes:
    """A PDF with one Helvetica text page per item (lines split on newlines)."""
    return _pdf([b"BT /F1 11 Tf 14 TL 72 720 Td "
                 + b"".join(_escape(line) + b" Tj T* " for line in text.split("\n")) + b"ET"
                 for text in pages], info)


def table_pdf(before: list[str], rows: list[list[str]], after: list[str],
              grid: bool = False) -> bytes:
    """One page: lines of text, a table (header first) drawn as a typesetter does (booktabs:
    rules above and below the header and at the end; ``grid``: every row and column ruled),
    then more lines."""
    ops, y = [], 720
    for line in before:
        ops.append(b"BT /F1 11 Tf 72 %d Td %s Tj ET" % (y, _escape(line)))
        y -= 14
    width, height = 110, 16
    x1 = 72 + width * len(rows[0])
    top = y - 4
    rules = [top, top - height] + ([top - height * i for i in range(2, len(rows) + 1)] if grid
                                   else [top - height * len(rows)])
    ops += [b"0.5 w 72 %d m %d %d l S" % (r, x1, r) for r in rules]
    if grid:
        ops += [b"0.5 w %d %d m %d %d l S" % (x, top, x, rules[-1])
                for x in range(72, x1 + 1, width)]
    for i, row in enumerate(rows):
        base = top - height * (i + 1) + 5
        ops += [b"BT /F1 10 Tf %d %d Td %s Tj ET" % (75 + width * j, base, _escape(cell))
                for j, cell in enumerate(row)]
    y = rules[-1] - 18
    for line in after:
        ops.append(b"BT /F1 11 Tf 72 %d Td %s Tj ET" % (y, _escape(line)))
        y -= 14
    return _pdf([b"\n".join(ops)])


def _pdf(streams: list[bytes], info: bytes = b"<< /Title (Made by a test) >>") -> bytes:
    """The PDF file around one content stream per page (Helvetica as /F1)."""
    n = len(streams)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, stream in enumerate(streams):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(info)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def text_image(lines: list[str], size: tuple[int, int] = (1700, 1100)) -> Image.Image:
    """Black text on white at about 12 pt for a 300 dpi scan."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    for i, line in enumerate(lines):
        draw.text((150, 150 + i * 70), line, fill=0, font=font)
    return image


def image_pdf(pages: list[list[str]]) -> bytes:
    """A scan: one picture of text per page, no text layer."""
    images = [text_image(lines).convert("RGB") for lines in pages]
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=300)
    return out.getvalue()


def png(lines: list[str]) -> bytes:
    out = io.BytesIO()
    text_image(lines).save(out, format="PNG")
    return out.getvalue()
