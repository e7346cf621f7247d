"""OCR engines on scanned pages: character error rate against hand-checked text, and seconds
per page, on this machine. Chooses the engine rag uses (ingest/ocr.py).

Pages: page 1 of the scanned Huffman 1952 paper (../shared/corpora/papers; its body text was
transcribed by hand and checked against the page image: bench/ocr/huffman1952-page1.txt; the
equations and footnotes are not in it), and three generated pages of known text. The error is
the Levenshtein distance of each reference paragraph to its best-matching stretch of the
engine's text (so headers, footnotes and equations an engine adds are not counted, but a
paragraph read out of order is), over the reference's characters. Whitespace is collapsed and
line-end hyphens rejoined on both sides first.

Engines: Tesseract (psm 1: automatic layout with script detection; psm 3: automatic layout) and,
when installed (`pip install rapidocr onnxruntime`), RapidOCR (PP-OCR models in ONNX). Each page
is rendered at 300 dpi, one thread per engine. Writes bench/results/ocr.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rapidfuzz.distance import Levenshtein
from rapidfuzz.fuzz import partial_ratio_alignment

from ingest.ocr import Tesseract, render_for_ocr
from ingest.text import clean, dehyphenate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' page generator
from tests.documents import text_image  # noqa: E402

PAPERS = ROOT.parent / "shared" / "corpora" / "papers"
OUT = Path(__file__).with_name("results") / "ocr.json"
GENERATED = [
    ["Invoice 4471 was paid on 12 March 2024 by bank transfer.",
     "The warehouse in Rotterdam ships orders within two days."],
    ["Section 3.2: the pump must be serviced every 500 hours.",
     "Warranty claims need the serial number and the receipt."],
    ["Minutes of the meeting: the budget of EUR 18,500 was approved.",
     "Next review: the first Monday of October, room B-104."],
]


def normalise(text: str) -> str:
    return " ".join(dehyphenate([clean(text)])[0].split())


def error_rate(reference: list[str], hypothesis: str) -> float:
    """Edit distance of each reference paragraph to its best-matching stretch, over all chars."""
    hyp = normalise(hypothesis)
    errors = total = 0
    for paragraph in reference:
        ref = normalise(paragraph)
        found = partial_ratio_alignment(ref, hyp)
        stretch = hyp[found.dest_start:found.dest_end] if found else ""
        errors += Levenshtein.distance(ref, stretch)
        total += len(ref)
    return errors / total


def tesseract(psm: int) -> Callable[[object], str]:
    engine = Tesseract(psm=psm)
    return lambda image: engine.read(image).text  # type: ignore[arg-type]


def rapidocr() -> Callable[[object], str] | None:
    try:
        from rapidocr import RapidOCR
    except ImportError:
        return None
    engine = RapidOCR(params={"Global.log_level": "error",
                              "EngineConfig.onnxruntime.intra_op_num_threads": 1})

    def read(image: object) -> str:
        import numpy as np

        return "\n".join(engine(np.array(image.convert("RGB"))).txts or ())  # type: ignore[attr-defined]
    return read


def pages() -> list[tuple[str, object, list[str]]]:
    """(name, image, reference paragraphs)."""
    import pypdfium2 as pdfium

    out = []
    scan = PAPERS / "Huffman1952.pdf"
    if scan.is_file():
        pdf = pdfium.PdfDocument(str(scan))
        reference = (Path(__file__).parent / "ocr" / "huffman1952-page1.txt").read_text()
        out.append(("huffman1952-p1", render_for_ocr(pdf[0]), reference.splitlines()))
    out += [(f"generated-{i}", text_image(lines), lines) for i, lines in enumerate(GENERATED, 1)]
    return out


def main() -> None:
    engines = {"tesseract-psm1": tesseract(1), "tesseract-psm3": tesseract(3)}
    if (rapid := rapidocr()) is not None:
        engines["rapidocr"] = rapid
    results: dict[str, object] = {"cpus": os.cpu_count(), "dpi": 300, "engines": {}}
    test_pages = pages()
    for name, read in engines.items():
        read(test_pages[-1][1])  # warm-up: model loading is not per page
        rows = []
        for page, image, reference in test_pages:
            started = time.perf_counter()
            text = read(image)
            seconds = time.perf_counter() - started
            rows.append({"page": page, "cer": round(error_rate(reference, text), 4),
                         "seconds": round(seconds, 2)})
            print(name, rows[-1], flush=True)
        results["engines"][name] = {  # type: ignore[index]
            "pages": rows,
            "cer_scan": next((r["cer"] for r in rows if r["page"].startswith("huffman")), None),
            "cer_generated": round(statistics.mean(r["cer"] for r in rows
                                                   if r["page"].startswith("generated")), 4),
            "seconds_per_page_median": round(statistics.median(r["seconds"] for r in rows), 2),
            "seconds_scan": next((r["seconds"] for r in rows if r["page"].startswith("huffman")),
                                 None),
        }
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
