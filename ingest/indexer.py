"""Incremental, crash-safe batch indexing of files and folders into a knowledge base.

Each file's new chunks are committed in one SQLite transaction; embeddings are cached by text
hash and committed per batch, so a killed job redoes little; the live snapshot changes only when
``KnowledgeBase.publish`` swaps the pointer at the end.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ingest.chunking import Chunker
from ingest.loaders import LoadError, load_file
from rag.kb import KnowledgeBase
from rag.protocols import Embedder
from rag.store import FileRecord

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


def walk(paths: Iterable[Path]) -> Iterator[tuple[Path, Path | None]]:
    """(root, file) for every non-hidden file below each path; (path, None) if it is missing."""
    for root in paths:
        root = root.expanduser().absolute()
        if root.is_file():
            yield root, root
        elif root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        yield root, Path(dirpath) / name
        else:
            yield root, None


def sha256_file(path: Path) -> tuple[str, bytes]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), data


class Indexer:
    def __init__(self, kb: KnowledgeBase, embedder: Embedder, chunker: Chunker) -> None:
        self.kb = kb
        self.embedder = embedder
        self.chunker = chunker

    def run(
        self, paths: Sequence[Path], *, rebuild: bool = False, progress: Progress | None = None
    ) -> IndexReport:
        progress = progress or _Silent()
        started = time.perf_counter()
        report = IndexReport()
        with self.kb.writer():
            if rebuild:
                self.kb.reset(self.embedder)
            else:
                self.kb.check_compatible(self.embedder)
            self.kb.record_signature(self.embedder)
            store = self.kb.store
            manifest = store.files()
            found = list(walk(paths))
            progress.start(sum(1 for _, f in found if f is not None))
            seen: set[str] = set()
            for root, path in found:
                if path is None:
                    if not any(_under(p, root) for p in manifest):
                        report.failed.append(Failure(str(root), "no such file or directory"))
                    continue
                report.files_seen += 1
                seen.add(str(path))
                self._index_file(path, manifest.get(str(path)), report, progress)
                progress.file_done(str(path))
            roots = [r for r, _ in found]
            gone = [p for p in manifest if p not in seen and any(_under(p, r) for r in roots)]
            for path in gone:
                report.chunks_removed += store.remove_files([path])
            report.removed = len(gone)
            if self.kb.needs_publish:
                self.kb.publish(self.embedder.dim)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _index_file(
        self, path: Path, known: FileRecord | None, report: IndexReport, progress: Progress
    ) -> None:
        store = self.kb.store
        try:
            st = path.stat()
            if known and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
                report.unchanged += 1
                return
            digest, data = sha256_file(path)
            if known and known.sha256 == digest:
                store.touch_file(str(path), st.st_size, st.st_mtime_ns)
                report.unchanged += 1
                return
            loaded = load_file(path, data)
            chunks = [c for doc in loaded.documents for c in self.chunker.chunk(doc)]
            if not chunks:
                raise LoadError("no text to index")
            self._embed_missing(chunks, progress)
        except (LoadError, OSError, MemoryError, RuntimeError, ValueError) as exc:
            kept = " (previous version kept in the index)" if known else ""
            reason = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
            report.failed.append(Failure(str(path), reason + kept))
            log.debug("failed %s", path, exc_info=True)
            return
        old_ids = {cid for cid, _ in store.iter_current_chunks(str(path))} if known else set()
        new_ids = {c.id for c in chunks}
        record = FileRecord(
            path=str(path), sha256=digest, size=st.st_size, mtime_ns=st.st_mtime_ns,
            kind=loaded.documents[0].kind, title=loaded.documents[0].title,
            n_docs=len(loaded.documents), n_chunks=len(chunks), warnings=loaded.warnings,
            indexed_at=time.time(),
        )
        store.replace_file(record, chunks, digest)
        report.indexed += 1
        report.chunks_added += len(new_ids - old_ids)
        report.chunks_removed += len(old_ids - new_ids)
        report.warnings.extend(Failure(str(path), w) for w in loaded.warnings)

    def _embed_missing(self, chunks: list, progress: Progress) -> None:  # type: ignore[type-arg]
        """Embed chunks whose text has no cached vector; commit each batch (resumable)."""
        store = self.kb.store
        by_hash = {c.text_hash: c.embed_text for c in chunks}
        todo = [h for h in by_hash if h not in store.known_vectors(list(by_hash))]
        progress.chunks_done(len(chunks) - len(todo))
        for i in range(0, len(todo), EMBED_BATCH):
            batch = todo[i : i + EMBED_BATCH]
            store.add_vectors(batch, self.embedder.embed_documents([by_hash[h] for h in batch]))
            progress.chunks_done(len(batch))


def _under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(str(root).rstrip(os.sep) + os.sep)
