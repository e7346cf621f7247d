"""Typed values passed between pipeline stages. Ids are content hashes, so re-ingesting is a no-op."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypedDict


def content_hash(*parts: str | int | None, length: int = 16) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


@dataclass(frozen=True)
class Section:
    """A stretch of a document's text with one page and one section title (never crossed by a chunk)."""

    text: str
    page: int | None = None
    title: str | None = None


@dataclass(frozen=True)
class Document:
    """A loaded source document. ``key`` is an external id (BEIR ``_id``), else the source path."""

    source: str
    title: str
    sections: tuple[Section, ...]
    key: str
    kind: str

    @property
    def id(self) -> str:
        return content_hash(self.source, self.key, *(s.text for s in self.sections))


@dataclass(frozen=True)
class Chunk:
    """A passage to embed, with provenance down to the character span in its page or section text."""

    text: str
    doc_id: str
    doc_key: str
    source: str
    title: str
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    ordinal: int
    embed_text: str = ""

    @property
    def id(self) -> str:
        """Covers every stored field, so a row with this id always holds exactly this chunk."""
        return content_hash(self.doc_id, self.ordinal, self.title, self.page, self.section,
                            self.char_start, self.char_end, self.text, self.embed_text)

    @property
    def text_hash(self) -> str:
        return content_hash(self.embed_text or self.text, length=32)


class Scores(TypedDict):
    dense: float | None
    bm25: float | None
    fused: float | None
    rerank: float | None


class HitRecord(TypedDict):
    """A hit as JSON: what ``rag search --json``, the API and the app show of it."""

    chunk_id: str
    score: float
    scores: Scores
    ranks: dict[str, int]
    text: str
    source: str
    title: str
    page: int | None
    section: str | None
    span: list[int]
    doc_key: str


class SourceRecord(HitRecord):
    """A passage an answer was given, as JSON: its number in the prompt, whether a sentence
    cites it, and a one-line snippet for lists."""

    n: int
    cited: bool
    snippet: str


@dataclass
class Hit:
    """A retrieved chunk with every score that put it there (None: that retriever did not find it)."""

    chunk: Chunk
    chunk_id: str
    score: float
    dense: float | None = None
    bm25: float | None = None
    fused: float | None = None
    rerank: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> HitRecord:
        c = self.chunk
        return {
            "chunk_id": self.chunk_id,
            "score": self.score,
            "scores": {"dense": self.dense, "bm25": self.bm25, "fused": self.fused,
                       "rerank": self.rerank},
            "ranks": self.ranks,
            "text": c.text,
            "source": c.source,
            "title": c.title,
            "page": c.page,
            "section": c.section,
            "span": [c.char_start, c.char_end],
            "doc_key": c.doc_key,
        }


@dataclass
class Loaded:
    """What one file yielded, and what went wrong in it short of failing it as a whole."""

    documents: list[Document]
    warnings: list[str] = field(default_factory=list)


@dataclass
class Generation:
    """A finished completion, or one streamed piece of one (``finish_reason`` None until the end)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    first_token_s: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Source:
    """A passage given to the model under the number ``n``: what an answer's ``[n]`` cites."""

    n: int
    hit: Hit
    text: str = ""  # what the prompt quotes when it is not the whole chunk (an excerpt)


@dataclass(frozen=True)
class LoadOptions:
    """What the job's settings change in loading (sent to the parser process with each file)."""

    max_pages: int = 0  # 0: no limit (PDF pages, image frames)
    ocr: str = "auto"  # auto (when an engine is installed) | tesseract | off
    ocr_languages: str = "eng"
    ocr_page_timeout_s: float = 60.0  # CPU seconds of one page's OCR
    pdf_tables: bool = True
    max_unzipped_mb: int = 256  # what a ZIP package (DOCX, PPTX, XLSX, EPUB) may inflate to
    max_text_mb: float = 100.0  # the text one file may come to


@dataclass
class RetrievalNotes:
    """What retrieval tells the answerer besides its hits: the query it searched (a follow-up
    made standalone), its warnings and timings, and the models that ran. The answer carries
    them on."""

    query: str = ""
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, str | None] = field(default_factory=dict)
