"""OCR of page images (scanned PDF pages, image files) with Tesseract.

Tesseract was chosen over RapidOCR (PP-OCR in ONNX, pip-installable) by measurement on the
scanned Huffman 1952 pages (bench/ocr_bench.py): lower character error rate and faster on this
CPU, and its layout analysis keeps a two-column page in reading order (RapidOCR returns lines
across both columns interleaved). It runs as a subprocess per page, so a page that takes too long
is stopped at ``timeout_s`` of CPU time and reported while the rest of the file is indexed.
"""

from __future__ import annotations

import csv
import io
import math
import os
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.core.errors import LoadError, OcrError
from rag.core.types import LoadOptions

if TYPE_CHECKING:
    from PIL.Image import Image

DPI = 300  # Tesseract's documented sweet spot for body text
MAX_PIXELS = 40_000_000  # a page of any declared size renders to at most this
# Limits count CPU time, so a busy machine reads what an idle one does; a process that gets no
# CPU at all is stopped after this many times its limit of wall time.
HANG_FACTOR = 10


@dataclass(frozen=True)
class Word:
    text: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in image pixels


@dataclass(frozen=True)
class OcrPage:
    text: str  # lines joined by newlines, paragraphs by blank lines, in reading order
    words: tuple[Word, ...]


class Tesseract:
    """The ``tesseract`` command (Debian: tesseract-ocr + tesseract-ocr-eng)."""

    name = "tesseract"

    def __init__(self, languages: str = "eng", timeout_s: float = 60.0, psm: int = 3) -> None:
        self.languages, self.timeout_s, self.psm = languages, timeout_s, psm

    @staticmethod
    def available() -> bool:
        return shutil.which("tesseract") is not None

    def read(self, image: Image) -> OcrPage:
        """The page's text. Its limit is CPU time, so the same page is read whether the machine
        is idle or busy: the kernel stops tesseract at the whole second at or above it, and a
        run that used more than the limit is refused after it ends, so that a limit under a
        second holds too; ``HANG_FACTOR`` times as much wall time stops a run that does not
        get to run at all."""
        png = io.BytesIO()
        image.convert("L").save(png, format="PNG")
        seconds = max(1, math.ceil(self.timeout_s))
        too_long = OcrError(f"OCR used over {self.timeout_s:g} s of CPU time "
                            "(ingest.ocr_page_timeout_s)")
        before = _children_cpu_s()
        try:
            done = subprocess.run(
                ["tesseract", "stdin", "stdout", "-l", self.languages, "--psm", str(self.psm),
                 "tsv"],
                input=png.getvalue(), capture_output=True, timeout=seconds * HANG_FACTOR,
                env={**os.environ, "OMP_THREAD_LIMIT": "1"},
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1)))
        except subprocess.TimeoutExpired:
            raise too_long from None
        if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL) or (
                _children_cpu_s() - before > self.timeout_s):
            raise too_long
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise OcrError(f"tesseract failed: {reason[-1] if reason else done.returncode}")
        return parse_tsv(done.stdout.decode("utf-8", errors="replace"))


def _children_cpu_s() -> float:
    """CPU seconds used by this process's ended children (OCR runs one page at a time)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def parse_tsv(tsv: str) -> OcrPage:
    """Tesseract's TSV (one row per word, numbered by block, paragraph and line) as text in its
    reading order, with each word's box."""
    words: list[Word] = []
    paragraphs: list[list[list[str]]] = []
    last_par, last_line = None, None
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        par = (row["block_num"], row["par_num"])
        line = (*par, row["line_num"])
        if par != last_par:
            paragraphs.append([])
        if line != last_line:
            paragraphs[-1].append([])
        paragraphs[-1][-1].append(text)
        last_par, last_line = par, line
        left, top = int(row["left"]), int(row["top"])
        words.append(Word(text, (left, top, left + int(row["width"]), top + int(row["height"]))))
    text = "\n\n".join("\n".join(" ".join(line) for line in par) for par in paragraphs)
    return OcrPage(text, tuple(words))


def ocr_engine(name: str, languages: str = "eng", timeout_s: float = 60.0) -> Tesseract | None:
    """The configured engine, or None (``off``, or ``auto`` with no engine installed)."""
    if name == "off" or (name == "auto" and not Tesseract.available()):
        return None
    if not Tesseract.available():
        raise OcrError("ingest.ocr = 'tesseract' but the tesseract command is not installed "
                       "(Debian: apt-get install tesseract-ocr tesseract-ocr-eng)")
    return Tesseract(languages, timeout_s)


def fit_for_ocr(image: Image) -> Image:
    """The current frame of ``image`` in greyscale, scaled down to at most ``MAX_PIXELS``."""
    frame = image.convert("L")
    pixels = frame.width * frame.height
    if pixels > MAX_PIXELS:
        scale = (MAX_PIXELS / pixels) ** 0.5
        frame = frame.resize((max(1, int(frame.width * scale)), max(1, int(frame.height * scale))))
    return frame


def render_for_ocr(pdf_page, dpi: int = DPI) -> Image:  # noqa: ANN001 - pypdfium2 PdfPage
    """The page as a greyscale image at ``dpi`` (less for huge pages)."""
    width, height = pdf_page.get_size()
    scale = min(dpi / 72, (MAX_PIXELS / max(1.0, width * height)) ** 0.5)
    return pdf_page.render(scale=scale, grayscale=True).to_pil()


def engine_for(options: LoadOptions) -> Tesseract | None:
    """The OCR engine the options ask for (None: OCR is off); one that cannot run fails the file."""
    try:
        return ocr_engine(options.ocr, options.ocr_languages, options.ocr_page_timeout_s)
    except OcrError as exc:
        raise LoadError(str(exc)) from None
