"""Token-aware chunking with the embedder's own tokenizer, at sentence and paragraph boundaries."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.core.protocols import Embedder
from rag.core.text import sentence_spans
from rag.core.types import Chunk, Document

# A Markdown table (what the loaders make of Office, CSV and HTML tables): a header row, its
# |---| rule, then one row per line. Chunks split it between rows only, and a chunk that starts
# inside it repeats the header, so each row is read (and embedded) under its column names. A
# header over half the token budget is not repeated: copied before every piece of every row, an
# 800 KB CSV with 200,000 columns made a 7 GB index.
_TABLE = r"^\|.*\|[ \t]*\n\|[ \t:|-]*-[ \t:|-]*\|[ \t]*$(?:\n\|.*\|[ \t]*$)*"
_FENCE = r"^(?P<mark>```|~~~)[^\n]*\n(?s:.*?)\n(?P=mark)[ \t]*$"
_BLOCK = re.compile(f"(?P<table>{_TABLE})|(?P<fence>{_FENCE})", re.M)

Span = tuple[int, int]
_LINE = re.compile(r"[^\n]*\S[^\n]*")


def unit_spans(text: str) -> list[tuple[int, int, Span | None]]:
    """Sentence-like units; table rows with their table's header span (the header itself is one
    unit, with None); the lines of a fenced code block (its comments' colons and full stops
    are not sentence ends: split there, a TOML block's chunk began mid-line, "RAG_UI_BIND)
    llm_log_mb = 20", and the model it was given went on copying it)."""
    out: list[tuple[int, int, Span | None]] = []
    pos = 0
    for block in _BLOCK.finditer(text):
        out += [(pos + a, pos + b, None) for a, b in sentence_spans(text[pos:block.start()])]
        at = block.start()
        lines = [m.span() for m in _LINE.finditer(block.group())]
        if block.group("fence"):
            out += [(at + a, at + b, None) for a, b in lines]
        else:
            header = (at, at + lines[1][1])
            out.append((*header, None))
            out += [(at + a, at + b, header) for a, b in lines[2:]]
        pos = block.end()
    out += [(pos + a, pos + b, None) for a, b in sentence_spans(text[pos:])]
    return out


# A token is rarely over 12 characters, so a piece of budget * 12 characters holds at least a
# chunk's worth of tokens; longer runs without a sentence end (a 16 MB one-line file) are cut
# into such pieces first, so the tokenizer never sees more than one piece at a time.
CHARS_PER_TOKEN_MAX = 12
COUNT_BATCH = 256  # units tokenised per call: the tokenizer's buffers stay small
# Every chunk records its document's title and its section's heading path, to cite them: a
# longer one is cut (a 2 MB HTML title and a 1 MB heading, copied into each of 1,471 chunks,
# made a 2.8 GB index of 4.5 MB of files). The text itself keeps the whole heading.
MAX_LABEL_CHARS = 300


def label(text: str | None) -> str | None:
    """A title or heading path as chunks record it: at most MAX_LABEL_CHARS, cut at a space."""
    if text is None or len(text) <= MAX_LABEL_CHARS:
        return text
    cut = text.rfind(" ", MAX_LABEL_CHARS // 2, MAX_LABEL_CHARS)
    return text[:cut if cut > 0 else MAX_LABEL_CHARS].rstrip() + "…"


def _pieces(text: str, a: int, b: int, budget: int) -> list[tuple[int, int]]:
    """(a, b) cut at whitespace (else hard) into spans of at most budget * 12 characters."""
    size = max(1, budget) * CHARS_PER_TOKEN_MAX
    out = []
    while b - a > size:
        cut = text.rfind(" ", a + size // 2, a + size)
        cut = cut if cut > a else a + size
        out.append((a, cut))
        a = cut
        while a < b and text[a].isspace():
            a += 1
    if b > a:
        out.append((a, b))
    return out


class TokenChunker:
    """Greedy packing of sentence units up to ``max_tokens`` (embedder's limit by default),
    with ``overlap_tokens`` of trailing sentences repeated; over-long sentences are cut at token
    offsets. Every chunk's embed text is verified against the limit with the real tokenizer."""

    def __init__(
        self,
        embedder: Embedder,
        max_tokens: int = 0,
        overlap_tokens: int = 32,
        prepend_title: bool = True,
    ) -> None:
        self.embedder = embedder
        limit = embedder.max_tokens
        self.max_tokens = min(max_tokens, limit) if max_tokens else limit
        self.overlap_tokens = min(overlap_tokens, self.max_tokens // 2)
        self.prepend_title = prepend_title

    def _count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, COUNT_BATCH texts per tokenizer call."""
        return [n for i in range(0, len(texts), COUNT_BATCH)
                for n in self.embedder.count_tokens(texts[i : i + COUNT_BATCH])]

    def chunk(self, doc: Document) -> list[Chunk]:
        title = label(doc.title) or ""
        prefix = self._title_prefix(title)
        budget = self.max_tokens - (self._count([prefix])[0] if prefix else 0)
        chunks: list[Chunk] = []
        doc_id = doc.id  # hashes the whole document: once, not per chunk
        for section in doc.sections:
            for start, end, header in self._pack(section.text, budget, prefix):
                text = section.text[start:end]
                if header is not None:
                    text = section.text[header[0]:header[1]] + "\n" + text
                chunks.append(
                    Chunk(
                        text=text,
                        doc_id=doc_id,
                        doc_key=doc.key,
                        source=doc.source,
                        title=title,
                        page=section.page,
                        section=label(section.title),
                        char_start=start,
                        char_end=end,
                        ordinal=len(chunks),
                        embed_text=prefix + text,
                    )
                )
        return chunks

    def _title_prefix(self, title: str) -> str:
        """The title gives chunks context, unless it would eat over a quarter of the budget."""
        if not (self.prepend_title and title.strip()):
            return ""
        prefix = title.strip() + "\n"
        most = self.max_tokens // 4
        fits = len(prefix) <= most * CHARS_PER_TOKEN_MAX and self._count([prefix])[0] <= most
        return prefix if fits else ""

    def _units(self, text: str, budget: int
               ) -> tuple[list[tuple[int, int, int, Span | None]], dict[Span, int]]:
        """(start, end, tokens, table header) per unit, and the tokens of each header that is
        repeated (see _TABLE); units over budget are split at token offsets (a table row too,
        if one row is over what its repeated header leaves of the budget)."""
        units = unit_spans(text)
        # A header of more characters than half the budget's tokens could hold is over it
        # unread (tokenising a 1.4 MB header at once cost 700 MB); the rest are counted.
        most = budget // 2
        tables = [h for h in dict.fromkeys(header for _, _, header in units if header is not None)
                  if h[1] - h[0] <= most * CHARS_PER_TOKEN_MAX]
        counts = self._count([text[a:b] + "\n" for a, b in tables])
        headers = {h: n for h, n in zip(tables, counts, strict=True) if n <= most}
        spans = [(p, header if header in headers else None) for a, b, header in units
                 for p in _pieces(text, a, b, budget)]
        sizes = self._count([text[a:b] for (a, b), _ in spans])
        out = []
        for ((a, b), header), n in zip(spans, sizes, strict=True):
            room = budget - (headers[header] if header else 0)
            if n <= room:
                out.append((a, b, n, header))
                continue
            offsets = self.embedder.tokenizer(
                text[a:b], add_special_tokens=False, return_offsets_mapping=True
            )["offset_mapping"]
            step = max(1, room - self.overlap_tokens)
            for i in range(0, len(offsets), step):
                window = offsets[i : i + room]
                out.append((a + window[0][0], a + window[-1][1], len(window), header))
                if i + room >= len(offsets):
                    break
        return out, headers

    def _pack(self, text: str, budget: int, prefix: str) -> list[tuple[int, int, Span | None]]:
        """(start, end, header) per chunk: the header span of the table a chunk starts inside,
        whose text goes before the chunk's (its tokens count against the budget)."""
        units, headers = self._units(text, budget)
        out: list[tuple[int, int, Span | None]] = []
        i = 0
        while i < len(units):
            header = units[i][3]
            lead = text[header[0]:header[1]] + "\n" if header else ""
            j, used = i, headers[header] if header else 0
            while j < len(units) and (j == i or used + units[j][2] <= budget):
                used += units[j][2]
                j += 1
            # Joining can change tokenisation slightly: verify with the real tokenizer.
            while j - i > 1 and self._count(
                [prefix + lead + text[units[i][0] : units[j - 1][1]]]
            )[0] > self.max_tokens:
                j -= 1
            out.append((units[i][0], units[j - 1][1], header))
            if j >= len(units):
                break
            # Next chunk starts with trailing units worth at most overlap_tokens.
            back, k = 0, j
            while k - 1 > i and back + units[k - 1][2] <= self.overlap_tokens:
                back += units[k - 1][2]
                k -= 1
            i = k
        return out
