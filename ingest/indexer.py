"""Incremental, crash-safe batch indexing of files and folders into a knowledge base.

Each file's new chunks are committed in one SQLite transaction; embeddings are cached by text
hash and committed per batch, so a killed job redoes little; the live snapshot changes only when
``KnowledgeBase.publish`` swaps the pointer at the end. Only regular files are read, each within
the per-file limits of ``IngestSettings``. Where files are parsed and embedded is the
runner's business (ingest/runners: local, ray); committing and publishing stay here.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pathspec

from ingest.reading import LOADER_VERSION, Refused, file_digest, not_regular, read_regular, under
from ingest.runners import FileJob, FileMeta, Progress, Runner
from ingest.runners.local import LocalRunner
from rag.core.config import IngestSettings
from rag.core.errors import Cancelled, KBError, LoadError
from rag.core.folders import absolute
from rag.core.protocols import Chunker, Embedder
from rag.core.types import Chunk
from rag.storage.kb import KnowledgeBase
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
    # not regular files, links out of the folder: treated as gone (their old chunks removed)
    skipped: list[Failure] = field(default_factory=list)
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
    real_root: str = ""  # the root without links: every file read must lie inside it

    def add(self, path: Path, mode: int) -> None:
        reason = not_regular(mode)
        if _not_utf8(str(path)):  # SQLite cannot store the name; say so instead of failing later
            path = Path(str(path).encode("utf-8", "replace").decode())
            reason = "file name is not valid UTF-8; rename it to index it"
        if reason:
            self.skipped.append(Failure(str(path), reason))
        else:
            self.files.append(path)


IGNORE_FILE = ".ragignore"


def _ignore_rules(folder: str, inherited: list[tuple[str, pathspec.GitIgnoreSpec]],
                  out: Scan) -> list[tuple[str, pathspec.GitIgnoreSpec]]:
    """The folder's ``.ragignore`` (gitignore syntax, relative to its folder) added to those of
    the folders above it, so a user can keep drafts, build output or pages that quote answers
    out of a knowledge base."""
    path = os.path.join(folder, IGNORE_FILE)
    if not os.path.isfile(path):
        return inherited
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            spec = pathspec.GitIgnoreSpec.from_lines(f.read().splitlines())
    except (OSError, ValueError) as exc:  # an unreadable or malformed file ignores nothing
        out.skipped.append(Failure(path, f"ignore rules not used: {exc}"))
        return inherited
    return [*inherited, (folder, spec)]


def _ignored(path: str, is_dir: bool, rules: list[tuple[str, pathspec.GitIgnoreSpec]]) -> bool:
    for folder, spec in rules:
        rel = os.path.relpath(path, folder).replace(os.sep, "/")
        if spec.match_file(rel + "/" if is_dir else rel):
            return True
    return False


def _as_scanned(recorded: str) -> str:
    """A recorded path as ``scan`` would name it now: files an older rag recorded with ``..`` in
    their path ("/home/me/work/../papers/a.pdf") belong to their folder, so indexing it again
    replaces them by their normal path instead of keeping both."""
    return str(absolute(recorded))


def scan(root: Path) -> Scan:
    """Non-hidden regular files below ``root`` that no ``.ragignore`` on the way excludes.
    Symbolic links are followed only when they stay inside the root; pipes, sockets and
    devices are skipped (reading one could block forever). Ignored files count as gone."""
    root = absolute(root)
    out = Scan(root)
    try:
        mode = os.stat(root).st_mode
    except FileNotFoundError:
        out.missing = "no such file or directory"
        return out
    except OSError as exc:
        out.missing = f"cannot read: {exc.strerror or exc}"
        return out
    real_root = out.real_root = os.path.realpath(root)
    if not stat.S_ISDIR(mode):
        out.add(root, mode)
        return out
    rules_of: dict[str, list[tuple[str, pathspec.GitIgnoreSpec]]] = {str(root): []}
    for dirpath, dirnames, filenames in os.walk(root):  # never descends into linked folders
        rules = _ignore_rules(dirpath, rules_of.pop(dirpath), out)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not _ignored(os.path.join(dirpath, d), True, rules))
        rules_of.update((os.path.join(dirpath, d), rules) for d in dirnames)
        for name in sorted(filenames):
            if name.startswith(".") or _ignored(os.path.join(dirpath, name), False, rules):
                continue
            path = Path(dirpath) / name
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    target = os.path.realpath(path)
                    if not under(target, real_root):
                        out.skipped.append(Failure(str(path), "symbolic link to outside the "
                                                              "indexed folder; not followed"))
                        continue
                    mode = os.stat(target).st_mode
            except OSError as exc:
                out.skipped.append(Failure(str(path), f"cannot read: {exc.strerror or exc}"))
                continue
            out.add(path, mode)
    return out


def _failed(report: IndexReport, path: Path, known: FileRecord | None, exc: Exception) -> None:
    if isinstance(exc, Refused):
        report.skipped.append(Failure(str(path), str(exc)))
        return
    kept = " (previous version kept in the index)" if known else ""
    reason = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
    report.failed.append(Failure(str(path), reason + kept))
    log.debug("failed %s", path, exc_info=True)


class Indexer:
    """The job: scan, decide what changed, commit each file, remove what is gone, publish. The
    runner turns changed files into chunks and vectors (ingest/runners)."""

    def __init__(self, kb: KnowledgeBase, embedder: Embedder, chunker: Chunker,
                 limits: IngestSettings | None = None, runner: Runner | None = None) -> None:
        self.kb = kb
        self.embedder = embedder
        self.chunker = chunker
        self.limits = limits or IngestSettings()
        self.runner = runner or LocalRunner(chunker)
        self._report = IndexReport()

    def run(
        self, paths: Sequence[Path], *, rebuild: bool = False, prune: bool = False,
        progress: Progress | None = None, cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Index ``paths``. A root that is missing or empty while the KB has files from it is an
        error, not a deletion, unless ``prune``. ``rebuild`` fills a new store and swaps it in
        only when complete. ``cancel`` (or Ctrl-C) stops the job; the live snapshot stays."""
        progress = progress or _Silent()
        started = time.perf_counter()
        report = self._report = IndexReport()
        with self.kb.writer():
            scans = [scan(p) for p in paths]
            missing = [s for s in scans if s.missing]
            if missing and (rebuild or len(missing) == len(scans)) and not prune:
                raise KBError("; ".join(f"{s.root}: {s.missing}" for s in missing)
                              + " (the knowledge base was not changed)")
            manifest = {} if rebuild else self.kb.store.files()
            scanned = {p: _as_scanned(p) for p in manifest}
            for s in scans:
                known = sum(1 for p in scanned.values() if under(p, str(s.root)))
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
            self.runner.process(self._changed(scans, manifest, seen, progress, cancel), self,
                                progress, cancel)
            roots = [s.root for s in scans if prune or not s.missing]
            gone = [p for p, as_scanned in scanned.items()
                    if p not in seen and any(under(as_scanned, str(r)) for r in roots)]
            report.chunks_removed += store.remove_files(gone)
            report.removed = len(gone)
            if rebuild and not report.indexed:
                raise KBError("the rebuild indexed no file; the previous knowledge base is kept")
            if self.kb.needs_publish:
                self.kb.publish(self.embedder.dim)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _changed(self, scans: list[Scan], manifest: dict[str, FileRecord], seen: set[str],
                 progress: Progress, cancel: threading.Event | None) -> Iterator[FileJob]:
        """The files to parse, read one at a time as the runner asks for them."""
        report = self._report
        for s in scans:
            # Skipped entries (links out of the folder, special files) are not in ``seen``: what
            # the KB holds of them goes, as for removed files.
            report.skipped.extend(s.skipped)
            for path in s.files:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                report.files_seen += 1
                try:
                    job = self._read(path, s.real_root, manifest.get(str(path)))
                except Refused as exc:  # became a link or a special file since the scan
                    _failed(report, path, None, exc)
                    progress.file_done(str(path))
                    continue
                seen.add(str(path))
                if job is None:
                    progress.file_done(str(path))
                else:
                    yield job

    def _read(self, path: Path, root: str, known: FileRecord | None) -> FileJob | None:
        """The file's bytes when they need parsing; None when unchanged or unreadable (counted
        in the report). Raises Refused when what is at the path may not be read at all."""
        report = self._report
        try:
            st = path.stat()
            if known and _unchanged(known, st):
                report.unchanged += 1
                return None
            st, data = read_regular(path, int(self.limits.max_file_mb * 2**20), root)
        except Refused:
            raise
        except (LoadError, OSError) as exc:
            _failed(report, path, known, exc)
            return None
        digest = file_digest(data)
        if known and known.sha256 == digest:
            self.kb.store.touch_file(str(path), st.st_size, st.st_mtime_ns)
            report.unchanged += 1
            return None
        return FileJob(path, known, st, digest, data, root)

    # -- the Sink a runner reports to -------------------------------------------------------
    def failed(self, job: FileJob, exc: Exception) -> None:
        """A file that could not be indexed keeps its previous version, unless it may not be
        read at all any more (Refused: a runner found it swapped for a link): then it goes."""
        _failed(self._report, job.path, job.known, exc)
        if isinstance(exc, Refused) and job.known is not None:
            self._report.chunks_removed += self.kb.store.remove_files([str(job.path)])
            self._report.removed += 1

    def commit(self, job: FileJob, chunks: Sequence[Chunk], meta: FileMeta) -> None:
        store, report = self.kb.store, self._report
        path, known, st = str(job.path), job.known, job.stat
        old_ids = {cid for cid, _ in store.iter_current_chunks(path)} if known else set()
        new_ids = {c.id for c in chunks}
        record = FileRecord(
            path=path, sha256=job.digest, size=st.st_size, mtime_ns=st.st_mtime_ns,
            kind=meta.kind, title=meta.title, n_docs=meta.n_docs, n_chunks=len(chunks),
            warnings=meta.warnings, indexed_at=time.time(),
        )
        store.replace_file(record, chunks, job.digest)
        report.indexed += 1
        report.chunks_added += len(new_ids - old_ids)
        report.chunks_removed += len(old_ids - new_ids)
        report.warnings.extend(Failure(path, w) for w in meta.warnings)

    def previous_hashes(self, job: FileJob) -> set[str]:
        if job.known is None:
            return set()
        return {c.text_hash for _, c in self.kb.store.iter_current_chunks(str(job.path))}

    def add_vectors(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        self.kb.store.add_vectors(hashes, vectors)

    def embed_missing(self, chunks: Sequence[Chunk], progress: Progress,
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

