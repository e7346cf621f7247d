"""SQLite holds the truth of a knowledge base: file manifest, chunks with provenance, vectors.

Chunks of a file's old version stay until a new snapshot no longer needs them (see ``KnowledgeBase
.publish``), so the live snapshot can always resolve its ids even while a job runs or after it dies.
A chunk id covers all of a chunk's content, so a chunk that a new file version shares with the old
one is moved to the new version (upsert), never left behind with the old file hash.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.core.types import Chunk

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    kind TEXT NOT NULL, title TEXT NOT NULL, n_docs INTEGER NOT NULL, n_chunks INTEGER NOT NULL,
    warnings TEXT NOT NULL, indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, path TEXT NOT NULL, file_sha TEXT NOT NULL, doc_id TEXT NOT NULL,
    doc_key TEXT NOT NULL, title TEXT NOT NULL, page INTEGER, section TEXT,
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, ordinal INTEGER NOT NULL,
    text TEXT NOT NULL, embed_text TEXT NOT NULL, text_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks (path, file_sha);
CREATE TABLE IF NOT EXISTS vectors (text_hash TEXT PRIMARY KEY, vec BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_size ON files (size);
"""
# 1: chunks were INSERT OR IGNOREd, so a file whose bytes changed but not its text lost its chunks.
# 2: chunk rows are upserted; opening a version-1 KB marks such files for re-indexing.
SCHEMA_VERSION = 2
STALE = -1  # size of a file record that must be re-read and re-indexed at the next run

CHUNK_COLUMNS = (
    "chunk_id, path, doc_id, doc_key, title, page, section, char_start, char_end, ordinal, text, "
    "embed_text"
)
CURRENT = "FROM chunks c JOIN files f ON c.path = f.path AND c.file_sha = f.sha256"


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int
    mtime_ns: int
    kind: str
    title: str
    n_docs: int
    n_chunks: int
    warnings: list[str]
    indexed_at: float


def _chunk(row: sqlite3.Row | tuple) -> tuple[str, Chunk]:  # type: ignore[type-arg]
    (cid, path, doc_id, doc_key, title, page, section, start, end, ordinal, text, embed) = row
    return cid, Chunk(text, doc_id, doc_key, path, title, page, section, start, end, ordinal, embed)


class ChunkStore:
    """One connection per store; writers hold the KB lock, readers may be many (WAL)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA busy_timeout=30000")
        self.repaired = 0 if readonly else self._migrate()

    def _migrate(self) -> int:
        """Bring an older KB up to SCHEMA_VERSION; returns how many files were marked stale."""
        version = int(self.get_meta("schema") or (1 if self.files() else SCHEMA_VERSION))
        if version >= SCHEMA_VERSION:
            if self.get_meta("schema") is None:
                with self.db:
                    self.set_meta("schema", str(SCHEMA_VERSION))
            return 0
        with self.db:
            broken = [
                path for path, n_chunks in self.db.execute("SELECT path, n_chunks FROM files")
                if self.current_chunk_count(path) < n_chunks
            ]
            self.db.executemany(
                "UPDATE files SET sha256 = '', size = ? WHERE path = ?",
                [(STALE, path) for path in broken],
            )
            self.set_meta("schema", str(SCHEMA_VERSION))
        return len(broken)

    def stale_files(self) -> int:
        """Files that an older version lost chunks of; the next ``rag index`` re-reads them."""
        return self.db.execute("SELECT COUNT(*) FROM files WHERE size = ?", (STALE,)).fetchone()[0]

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- files ------------------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        rows = self.db.execute("SELECT * FROM files").fetchall()
        return {
            r[0]: FileRecord(*r[:8], json.loads(r[8]), r[9])  # type: ignore[misc]
            for r in rows
        }

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute(
            "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path)
        )
        self.db.commit()

    def replace_file(
        self, record: FileRecord, chunks: Sequence[Chunk], file_sha: str
    ) -> None:
        """Make ``chunks`` the current version of the file, in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (chunk_id) "
                "DO UPDATE SET path = excluded.path, file_sha = excluded.file_sha",
                [
                    (c.id, record.path, file_sha, c.doc_id, c.doc_key, c.title, c.page, c.section,
                     c.char_start, c.char_end, c.ordinal, c.text, c.embed_text, c.text_hash)
                    for c in chunks
                ],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record.path, record.sha256, record.size, record.mtime_ns, record.kind,
                 record.title, record.n_docs, record.n_chunks, json.dumps(record.warnings),
                 record.indexed_at),
            )
            self.set_meta("dirty", "1")

    def remove_files(self, paths: Iterable[str]) -> int:
        """Forget files; their chunks leave the index at the next publish. Returns chunks dropped."""
        paths = list(paths)
        if not paths:
            return 0
        with self.db:
            dropped = 0
            for path in paths:
                dropped += self.db.execute(
                    "SELECT COUNT(*) " + CURRENT + " WHERE f.path = ?", (path,)
                ).fetchone()[0]
                self.db.execute("DELETE FROM files WHERE path = ?", (path,))
            self.set_meta("dirty", "1")
        return dropped

    def current_chunk_count(self, path: str) -> int:
        return self.db.execute(
            "SELECT COUNT(*) " + CURRENT + " WHERE f.path = ?", (path,)
        ).fetchone()[0]

    # -- vectors ----------------------------------------------------------------------------
    def _select_in(self, sql: str, keys: Sequence[str]) -> Iterator[tuple]:  # type: ignore[type-arg]
        """Rows of ``sql`` (with one ``IN ({marks})``) for all keys, 500 at a time (SQLite's
        variable limit)."""
        for i in range(0, len(keys), 500):
            part = list(keys[i : i + 500])
            yield from self.db.execute(sql.format(marks=",".join("?" * len(part))), part)

    def known_vectors(self, hashes: Sequence[str]) -> set[str]:
        return {r[0] for r in self._select_in(
            "SELECT text_hash FROM vectors WHERE text_hash IN ({marks})", hashes)}

    def add_vectors(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                [(h, v.astype(np.float32).tobytes()) for h, v in zip(hashes, vectors, strict=True)],
            )

    def sample_vector(self) -> tuple[str, np.ndarray] | None:
        """One current chunk's embedded text and its stored vector."""
        row = self.db.execute(
            "SELECT c.embed_text, v.vec " + CURRENT + " JOIN vectors v ON v.text_hash = c.text_hash"
            " ORDER BY c.chunk_id LIMIT 1").fetchone()
        return (row[0], np.frombuffer(row[1], dtype=np.float32)) if row else None

    # -- snapshot inputs and garbage collection ---------------------------------------------
    def current_rows(self, dim: int) -> tuple[list[str], list[str], np.ndarray]:
        """(chunk ids, texts for BM25, vectors) of every current chunk, in a stable order."""
        rows = self.db.execute(
            "SELECT c.chunk_id, c.embed_text, v.vec " + CURRENT
            + " JOIN vectors v ON v.text_hash = c.text_hash ORDER BY c.path, c.ordinal"
        ).fetchall()
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
        return [r[0] for r in rows], [r[1] for r in rows], vectors.reshape(len(rows), dim)

    def current_texts(self) -> tuple[list[str], list[str]]:
        """(chunk ids, texts for BM25) of every current chunk, in ``current_rows``' order."""
        rows = self.db.execute(
            "SELECT c.chunk_id, c.embed_text " + CURRENT + " ORDER BY c.path, c.ordinal"
        ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def vectors_of(self, ids: Sequence[str], dim: int) -> np.ndarray:
        """The stored vectors of these chunks, in their order."""
        found: dict[str, bytes] = dict(self._select_in(
            "SELECT c.chunk_id, v.vec FROM chunks c JOIN vectors v ON v.text_hash = c.text_hash"
            " WHERE c.chunk_id IN ({marks})", ids))
        return np.frombuffer(b"".join(found[i] for i in ids), dtype=np.float32).reshape(
            len(ids), dim)

    def collect_garbage(self) -> None:
        """Drop chunks no current file uses and vectors no chunk uses (after a publish)."""
        with self.db:
            self.db.execute(
                "DELETE FROM chunks WHERE chunk_id NOT IN (SELECT c.chunk_id " + CURRENT + ")"
            )
            self.db.execute(
                "DELETE FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)"
            )

    # -- reads ------------------------------------------------------------------------------
    def chunks_by_id(self, ids: Sequence[str]) -> dict[str, Chunk]:
        return dict(_chunk(row) for row in self._select_in(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE chunk_id IN ({{marks}})", ids))

    def iter_current_chunks(self, path: str | None = None) -> Iterator[tuple[str, Chunk]]:
        cols = ", ".join("c." + c.strip() for c in CHUNK_COLUMNS.split(","))
        sql = f"SELECT {cols} {CURRENT}" + (" WHERE f.path = ?" if path else "")
        for row in self.db.execute(sql + " ORDER BY c.path, c.ordinal", (path,) if path else ()):
            yield _chunk(row)

    def stats(self) -> dict[str, int]:
        files = self.db.execute("SELECT COUNT(*), COALESCE(SUM(n_docs), 0) FROM files").fetchone()
        chunks = self.db.execute("SELECT COUNT(*) " + CURRENT).fetchone()[0]
        return {"files": files[0], "documents": files[1], "chunks": chunks}


