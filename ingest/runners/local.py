"""The default runner: this process chunks and embeds one file while a parser child reads the next."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ingest.parsing import ParseWorker
from ingest.runners import FILE_ERRORS, FileJob, FileMeta, Progress, Sink, chunk_file, parse_worker
from rag.core.errors import LoadError
from rag.core.protocols import Chunker


class LocalRunner:
    def __init__(self, chunker: Chunker) -> None:
        self.chunker = chunker

    def process(self, jobs: Iterator[FileJob], sink: Sink, progress: Progress,
                cancel: threading.Event | None) -> None:
        worker = parse_worker(sink.limits)
        try:
            parsing: FileJob | None = None  # parsed in the child while the previous one embeds
            for job in jobs:
                parsing = self._advance(parsing, job, worker, sink, progress, cancel)
            self._advance(parsing, None, worker, sink, progress, cancel)
        finally:
            worker.close(kill=True)

    def _advance(self, parsing: FileJob | None, job: FileJob | None, worker: ParseWorker,
                 sink: Sink, progress: Progress,
                 cancel: threading.Event | None) -> FileJob | None:
        """Collect the file being parsed, hand ``job`` to the parser, then chunk, embed and
        store the collected one while the parser works on ``job``; returns what is parsing."""
        loaded = None
        if parsing is not None:
            try:
                loaded = worker.result(cancel)
            except LoadError as exc:
                sink.failed(parsing, exc)
        if job is not None:
            try:
                worker.submit(job.path, job.data)
            except LoadError as exc:
                sink.failed(job, exc)
                job = None
            else:
                job.data = b""  # the child has it
        if parsing is not None:
            if loaded is not None:
                try:
                    chunks = chunk_file(self.chunker, loaded)
                    sink.embed_missing(chunks, progress, cancel)
                except FILE_ERRORS as exc:
                    sink.failed(parsing, exc)
                else:
                    sink.commit(parsing, chunks, FileMeta.of(loaded))
            progress.file_done(str(parsing.path))
        return job
