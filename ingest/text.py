"""Text as every loader hands it on: Unicode cleaned, ligatures and line-end hyphens mended,
bytes of any encoding decoded, tables written as Markdown rows."""

from __future__ import annotations

import re
import unicodedata

from rag.core.errors import LoadError

# Compatibility characters that only change how letters are drawn: Latin ligatures (U+FB00-06:
# to BM25 "\ufb01rst" is not "first"), Hebrew and Arabic presentation forms, full-width forms,
# no-break and typographic spaces. NFKC maps them to the letters they stand for. Other
# compatibility characters (superscripts, fractions, circled digits) carry meaning and stay.
_PRESENTATION = re.compile("[\u00a0\u2000-\u200a\u202f\u205f\ufb00-\ufdff\ufe70-\ufefe"
                           "\uff01-\uffef]+")


class TextBudget:
    """The text one file may come to (``ingest.max_text_mb``), spent as a loader reads it, so
    that a small file that repeats one long string (a spreadsheet's cells) stops early
    with the limit named, not after gigabytes."""

    def __init__(self, max_mb: float) -> None:
        self.max_mb, self.left = max_mb, max_mb * 2**20

    def spend(self, chars: int) -> None:
        self.left -= chars
        if self.left < 0:
            raise LoadError(f"its text comes to more than {self.max_mb:g} MB (ingest.max_text_mb): "
                            "content repeated many times over, or a file too large to index")


def clean(text: str) -> str:
    """NFC with presentation forms unfolded, line ends as newlines (Windows CRLF, old Mac CR:
    headings are found line by line), no NULs, stray control characters or lone surrogates
    (from broken PDF fonts or JSON escapes; SQLite cannot store them); chunk spans index into
    this cleaned text."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text = _PRESENTATION.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]", _blank, text)


_HYPHENATED = re.compile(r"(\w+)-[ \t]*\r?\n[ \t]*(\w+)")


_COMPOUND = re.compile(r"\b(\w+)-(\w+)\b")


_PRIVATE = re.compile("[\ue000-\uf8ff]")


LIGATURES = ("fi", "ff", "fl", "ffi", "ffl")  # TeX's f-ligatures, most frequent first


KNOWN_ZIPF = 1.5  # wordfreq's scale: 1.5 is about once per 30 million words
COMMON_ZIPF = 3.0  # about once per million words: a word, not a fragment ("transduc")


def recover_ligatures(pages: list[str]) -> tuple[list[str], dict[str, str]]:
    """Private-use code points that a PDF font gives its ligature glyphs (a TeX font with no
    ToUnicode entry for them: the Attention paper's "fi" is U+E000 to every extractor) mapped back
    to letters. For each code point, the ligature that turns the most of the words it occurs in
    into known English words (wordfreq; counted in letters, so long words weigh more than short
    accidental ones like "stat") wins if it explains at least half; code points no ligature
    explains (symbols, math) stay."""
    codes = {c for page in pages for c in _PRIVATE.findall(page)}
    if not codes:
        return pages, {}
    from wordfreq import zipf_frequency

    found: dict[str, str] = {}
    for code in sorted(codes):
        words = {w for page in pages for w in re.findall(f"[^\\W\\d_]*{code}[^\\W\\d_]*", page)
                 if len(w) > 1}
        if not words:
            continue
        letters = sum(len(w) for w in words)
        share = {lig: sum(len(w) for w in words if zipf_frequency(w.replace(code, lig), "en")
                          >= KNOWN_ZIPF) / letters for lig in LIGATURES}
        best = max(LIGATURES, key=share.__getitem__)  # ties: the more frequent ligature
        if share[best] >= 0.5:
            found[code] = best
    if found:
        table = str.maketrans(found)
        pages = [page.translate(table) for page in pages]
    return pages, found


def _compound(left: str, right: str) -> bool:
    """A hyphenated compound, not a word broken in two: two common words ("source", "target")
    that make no known word together ("sourcetarget"). A capitalised first part is left out: it
    is more often a name broken in two ("Ko-\nray")."""
    from wordfreq import zipf_frequency

    return (left.islower() and zipf_frequency(left + right, "en") < KNOWN_ZIPF
            and min(zipf_frequency(left, "en"), zipf_frequency(right, "en")) >= COMMON_ZIPF)


def dehyphenate(pages: list[str]) -> list[str]:
    """Words broken at line ends ("transduc-\\ntion") rejoined, in text laid out in lines (PDF
    pages, OCR). A compound keeps its hyphen: one the document also writes with its hyphen
    inside a line ("self-attention"), or two common words that join into no known one
    ("source-target", "move-to-front"; in the shared papers, 10 of 402 line-end hyphens, which
    became "sourcetarget" before). A break before a capital or a digit is not a word break and
    stays."""
    compounds = {m.group().lower() for page in pages for m in _COMPOUND.finditer(page)}

    def join(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        if not (left[-1].isalpha() and right[0].islower()):
            return m.group()
        kept = f"{left}-{right}".lower() in compounds or _compound(left, right)
        return f"{left}{'-' if kept else ''}{right}"

    return [_HYPHENATED.sub(join, page) for page in pages]


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


def markdown_table(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as a Markdown table, one row per line: what the chunker
    keeps whole and heads with its column names. Empty rows are dropped; short rows padded."""
    def cell(value: str) -> str:
        return " ".join(clean(str(value)).split()).replace("|", "\\|")

    rows = [[cell(v) for v in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)
