"""Runners: where an indexing job's changed files are parsed, chunked and embedded.

The job (``ingest.indexer.Indexer``) scans, decides what changed, commits each file and publishes;
a runner only turns changed files into chunks and vectors, through the same loaders, chunker and
embedder code wherever it runs: ``local`` in this process and one parser child, ``ray`` on Ray Data
(one machine or a cluster).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ingest.chunking import label
from ingest.parsing import ParseWorker
from rag.core.config import IngestSettings
from rag.core.errors import LoadError
from rag.core.protocols import Chunker
from rag.core.types import Chunk, Loaded, LoadOptions
from rag.storage.store import FileRecord


@dataclass
class FileJob:
    """A changed file between reading and storing."""

    path: Path
    known: FileRecord | None
    stat: os.stat_result
    digest: str
    data: bytes
    root: str = ""  # the indexed folder without links: the file must still lie inside it


@dataclass
class FileMeta:
    """What a file's record keeps of its parse besides the chunks."""

    kind: str
    title: str
    n_docs: int
    warnings: list[str]

    @classmethod
    def of(cls, loaded: Loaded) -> FileMeta:
        first = loaded.documents[0]
        return cls(first.kind, label(first.title) or "", len(loaded.documents),
                   list(loaded.warnings))


class Progress(Protocol):
    """What a long indexing job tells its user; the CLI draws it with rich."""

    def start(self, files: int) -> None: ...
    def file_done(self, path: str) -> None: ...
    def chunks_done(self, count: int) -> None: ...


class Sink(Protocol):
    """The job's side: what a runner hands its results to (all on the job's machine)."""

    limits: IngestSettings

    def failed(self, job: FileJob, exc: Exception) -> None: ...
    def embed_missing(self, chunks: Sequence[Chunk], progress: Progress,
                      cancel: threading.Event | None) -> None: ...
    def add_vectors(self, hashes: Sequence[str], vectors: object) -> None: ...
    def previous_hashes(self, job: FileJob) -> set[str]: ...
    def commit(self, job: FileJob, chunks: Sequence[Chunk], meta: FileMeta) -> None: ...


class Runner(Protocol):
    def process(self, jobs: Iterator[FileJob], sink: Sink, progress: Progress,
                cancel: threading.Event | None) -> None: ...


def parse_worker(limits: IngestSettings) -> ParseWorker:
    """A parser child within the per-file limits (time, memory, pages, OCR)."""
    options = LoadOptions(limits.max_pages, limits.ocr, limits.ocr_languages,
                          limits.ocr_page_timeout_s, limits.pdf_tables, limits.max_unzipped_mb,
                          limits.max_text_mb)
    return ParseWorker(limits.parse_timeout_s, options, limits.parse_memory_mb,
                       limits.file_budget_s)


def chunk_file(chunker: Chunker, loaded: Loaded) -> list[Chunk]:
    chunks = [c for doc in loaded.documents for c in chunker.chunk(doc)]
    if not chunks:
        raise LoadError("no text to index")
    return chunks


# What a runner reports as one file's failure; anything else is a bug and stops the job.
FILE_ERRORS = (LoadError, OSError, MemoryError, RuntimeError, ValueError)
