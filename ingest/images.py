"""Image files (PNG, JPEG, TIFF with its frames, WebP, BMP, GIF) read by OCR, a frame per page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.ocr import engine_for, fit_for_ocr
from ingest.text import clean, dehyphenate
from rag.core.errors import LoadError, OcrError
from rag.core.types import Document, Loaded, LoadOptions, Section


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
        engine = engine_for(self.options)
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
