"""Incremental, crash-safe batch indexing of files and folders into a knowledge base.

Each file's new chunks are committed in one SQLite transaction; embeddings are cached by text
hash and committed per batch, so a killed job redoes little; the live snapshot changes only when
``KnowledgeBase.publish`` swaps the pointer at the end. Only regular files are read, each within
the per-file limits of ``IngestSettings``. The parser child reads the next file while this
process chunks and embeds the one before it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ingest.chunking import Chunker
from ingest.loaders import Loaded, LoadError, LoadOptions
from ingest.parsing import Cancelled, ParseWorker
from rag.config import IngestSettings
from rag.protocols import Embedder
from rag.storage.kb import KBError, KnowledgeBase
from rag.storage.store import FileRecord

log = logging.getLogger(__name__)
logging.getLogger("pypdf").setLevel(logging.ERROR)
EMBED_BATCH = 256


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class IndexReport:
    files_seen: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)  # not regular files, links outside
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    warnings: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Exit status: something is indexed (now or before) and not everything failed."""
        return self.files_seen > 0 and len(self.failed) < self.files_seen

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Progress(Protocol):
    """What a long indexing job tells its user; the CLI draws it with rich."""

    def start(self, files: int) -> None: ...
    def file_done(self, path: str) -> None: ...
    def chunks_done(self, count: int) -> None: ...


class _Silent:
    def start(self, files: int) -> None: ...
    def file_done(self, path: str) -> None: ...
    def chunks_done(self, count: int) -> None: ...


@dataclass
class Scan:
    """One root's regular files, what was skipped in it, and why it is unusable (if it is)."""

    root: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    missing: str | None = None

    def add(self, path: Path, mode: int) -> None:
        reason = _not_regular(mode)
        if _not_utf8(str(path)):  # SQLite cannot store the name; say so instead of failing later
            path = Path(str(path).encode("utf-8", "replace").decode())
            reason = "file name is not valid UTF-8; rename it to index it"
        if reason:
            self.skipped.append(Failure(str(path), reason))
        else:
            self.files.append(path)


_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder"}


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special file')}); not read"


def scan(root: Path) -> Scan:
    """Non-hidden regular files below ``root``. Symbolic links are followed only when they stay
    inside the root; pipes, sockets and devices are skipped (reading one could block forever)."""
    root = root.expanduser().absolute()
    out = Scan(root)
    try:
        mode = os.stat(root).st_mode
    except FileNotFoundError:
        out.missing = "no such file or directory"
        return out
    except OSError as exc:
        out.missing = f"cannot read: {exc.strerror or exc}"
        return out
    if not stat.S_ISDIR(mode):
        out.add(root, mode)
        return out
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):  # never descends into linked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    target = os.path.realpath(path)
                    if not _under(target, Path(real_root)):
                        out.skipped.append(Failure(str(path), "symbolic link to outside the "
                                                              "indexed folder; not followed"))
                        continue
                    mode = os.stat(target).st_mode
            except OSError as exc:
                out.skipped.append(Failure(str(path), f"cannot read: {exc.strerror or exc}"))
                continue
            out.add(path, mode)
    return out


def read_regular(path: Path, max_bytes: int) -> tuple[os.stat_result, bytes]:
    """The file's bytes, refusing anything that is not a regular file or is over ``max_bytes``;
    opened non-blocking, so a file swapped for a pipe after the scan cannot hang the job."""
    fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        reason = _not_regular(st.st_mode)
        if reason:
            raise LoadError(reason)
        if st.st_size > max_bytes:
            raise LoadError(f"{st.st_size / 2**20:.1f} MB is over the limit of "
                            f"{max_bytes / 2**20:g} MB (ingest.max_file_mb); not read")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise LoadError(f"grew over the limit of {max_bytes / 2**20:g} MB while being read")
    return st, data


@dataclass
class _Job:
    """A changed file between reading and storing."""

    path: Path
    known: FileRecord | None
    stat: os.stat_result
    digest: str
    data: bytes


def _failed(report: IndexReport, path: Path, known: FileRecord | None, exc: Exception) -> None:
    kept = " (previous version kept in the index)" if known else ""
    reason = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
    report.failed.append(Failure(str(path), reason + kept))
    log.debug("failed %s", path, exc_info=True)


class Indexer:
    def __init__(self, kb: KnowledgeBase, embedder: Embedder, chunker: Chunker,
                 limits: IngestSettings | None = None) -> None:
        self.kb = kb
        self.embedder = embedder
        self.chunker = chunker
        self.limits = limits or IngestSettings()

    def run(
        self, paths: Sequence[Path], *, rebuild: bool = False, prune: bool = False,
        progress: Progress | None = None, cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Index ``paths``. A root that is missing or empty while the KB has files from it is an
        error, not a deletion, unless ``prune``. ``rebuild`` fills a new store and swaps it in
        only when complete. ``cancel`` (or Ctrl-C) stops the job; the live snapshot stays."""
        progress = progress or _Silent()
        started = time.perf_counter()
        report = IndexReport()
        limits = self.limits
        options = LoadOptions(limits.max_pages, limits.ocr, limits.ocr_languages,
                              limits.ocr_page_timeout_s, limits.pdf_tables)
        worker = ParseWorker(limits.parse_timeout_s, options, limits.parse_memory_mb)
        with self.kb.writer():
            scans = [scan(p) for p in paths]
            missing = [s for s in scans if s.missing]
            if missing and (rebuild or len(missing) == len(scans)) and not prune:
                raise KBError("; ".join(f"{s.root}: {s.missing}" for s in missing)
                              + " (the knowledge base was not changed)")
            manifest = {} if rebuild else self.kb.store.files()
            for s in scans:
                known = sum(1 for p in manifest if _under(p, s.root))
                if not s.missing and not s.files and not s.skipped and known:
                    s.missing = "folder is empty (not mounted?)"
                if s.missing and not prune:
                    note = f"; its {known} indexed file(s) are kept (--prune removes them)"
                    report.failed.append(Failure(str(s.root), s.missing + (note if known else "")))
            if rebuild:
                self.kb.begin_rebuild(self.embedder)
            else:
                self.kb.check_compatible(self.embedder)
                self.kb.record_signature(self.embedder)
            store = self.kb.store
            if store.repaired:
                report.warnings.append(Failure(str(self.kb.path), (
                    f"{store.repaired} file(s) indexed by an older rag version had lost their "
                    "chunks; they are re-indexed now")))
            progress.start(sum(len(s.files) for s in scans))
            seen: set[str] = set()
            parsing: _Job | None = None  # parsed in the child while the previous file embeds
            try:
                for s in scans:
                    report.skipped.extend(s.skipped)
                    seen.update(f.path for f in s.skipped)  # present, so not deleted from the KB
                    for path in s.files:
                        if cancel is not None and cancel.is_set():
                            raise Cancelled("cancelled")
                        report.files_seen += 1
                        seen.add(str(path))
                        job = self._read(path, manifest.get(str(path)), report)
                        if job is None:
                            progress.file_done(str(path))
                        else:
                            parsing = self._advance(parsing, job, worker, report, progress,
                                                    cancel)
                self._advance(parsing, None, worker, report, progress, cancel)
            finally:
                worker.close(kill=True)
            roots = [s.root for s in scans if prune or not s.missing]
            gone = [p for p in manifest if p not in seen and any(_under(p, r) for r in roots)]
            report.chunks_removed += store.remove_files(gone)
            report.removed = len(gone)
            if rebuild and not report.indexed:
                raise KBError("the rebuild indexed no file; the previous knowledge base is kept")
            if self.kb.needs_publish:
                self.kb.publish(self.embedder.dim)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _read(self, path: Path, known: FileRecord | None, report: IndexReport) -> _Job | None:
        """The file's bytes when they need parsing; None when unchanged or unreadable (counted
        in the report)."""
        try:
            st = path.stat()
            if known and _unchanged(known, st):
                report.unchanged += 1
                return None
            st, data = read_regular(path, int(self.limits.max_file_mb * 2**20))
        except (LoadError, OSError) as exc:
            _failed(report, path, known, exc)
            return None
        digest = file_digest(data)
        if known and known.sha256 == digest:
            self.kb.store.touch_file(str(path), st.st_size, st.st_mtime_ns)
            report.unchanged += 1
            return None
        return _Job(path, known, st, digest, data)

    def _advance(self, parsing: _Job | None, job: _Job | None, worker: ParseWorker,
                 report: IndexReport, progress: Progress,
                 cancel: threading.Event | None) -> _Job | None:
        """Collect the file being parsed, hand ``job`` to the parser, then chunk, embed and
        store the collected one while the parser works on ``job``; returns what is parsing."""
        loaded = None
        if parsing is not None:
            try:
                loaded = worker.result(cancel)
            except LoadError as exc:
                _failed(report, parsing.path, parsing.known, exc)
        if job is not None:
            try:
                worker.submit(job.path, job.data)
            except LoadError as exc:
                _failed(report, job.path, job.known, exc)
                job = None
            else:
                job.data = b""  # the child has it
        if parsing is not None:
            if loaded is not None:
                self._store(parsing, loaded, report, progress, cancel)
            progress.file_done(str(parsing.path))
        return job

    def _store(self, job: _Job, loaded: Loaded, report: IndexReport, progress: Progress,
               cancel: threading.Event | None) -> None:
        store = self.kb.store
        try:
            chunks = [c for doc in loaded.documents for c in self.chunker.chunk(doc)]
            if not chunks:
                raise LoadError("no text to index")
            self._embed_missing(chunks, progress, cancel)
        except (LoadError, OSError, MemoryError, RuntimeError, ValueError) as exc:
            _failed(report, job.path, job.known, exc)
            return
        path, known, st = job.path, job.known, job.stat
        old_ids = {cid for cid, _ in store.iter_current_chunks(str(path))} if known else set()
        new_ids = {c.id for c in chunks}
        record = FileRecord(
            path=str(path), sha256=job.digest, size=st.st_size, mtime_ns=st.st_mtime_ns,
            kind=loaded.documents[0].kind, title=loaded.documents[0].title,
            n_docs=len(loaded.documents), n_chunks=len(chunks), warnings=loaded.warnings,
            indexed_at=time.time(),
        )
        store.replace_file(record, chunks, job.digest)
        report.indexed += 1
        report.chunks_added += len(new_ids - old_ids)
        report.chunks_removed += len(old_ids - new_ids)
        report.warnings.extend(Failure(str(path), w) for w in loaded.warnings)

    def _embed_missing(self, chunks: list, progress: Progress,  # type: ignore[type-arg]
                       cancel: threading.Event | None) -> None:
        """Embed chunks whose text has no cached vector; commit each batch (resumable)."""
        store = self.kb.store
        by_hash = {c.text_hash: c.embed_text for c in chunks}
        cached = store.known_vectors(list(by_hash))
        todo = [h for h in by_hash if h not in cached]
        progress.chunks_done(len(chunks) - len(todo))
        for i in range(0, len(todo), EMBED_BATCH):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            batch = todo[i : i + EMBED_BATCH]
            store.add_vectors(batch, self.embedder.embed_documents([by_hash[h] for h in batch]))
            progress.chunks_done(len(batch))


# What a file yields changes with the loaders (OCR, text cleaning, new formats, PDF tables): their
# version is part of each file's recorded digest, so files indexed by older loaders are read again
# by the next run; chunks whose text did not change keep their vectors.
LOADER_VERSION = 3


def file_digest(data: bytes) -> str:
    return f"{LOADER_VERSION}:{hashlib.sha256(data).hexdigest()}"


# File systems stamp mtimes with a coarse clock: a file rewritten (same size) within the same
# tick as it was indexed keeps its mtime. Such "racily clean" records are hashed, as git does.
RACY_NS = 2_000_000_000


def _unchanged(known: FileRecord, st: os.stat_result) -> bool:
    return (known.sha256.startswith(f"{LOADER_VERSION}:") and known.size == st.st_size
            and known.mtime_ns == st.st_mtime_ns
            and st.st_mtime_ns < known.indexed_at * 1e9 - RACY_NS)


def _not_utf8(text: str) -> bool:
    """Names with bytes that are not UTF-8 reach Python as lone surrogates SQLite cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(str(root).rstrip(os.sep) + os.sep)
