"""Thumbs up/down on answers, kept with the question, answer and sources so that they can be
exported as an evaluation set (JSONL, one judged answer per line)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import IO

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT PRIMARY KEY, created REAL NOT NULL, kb TEXT NOT NULL, question TEXT NOT NULL,
    standalone_query TEXT, answer TEXT NOT NULL, rating TEXT NOT NULL, comment TEXT NOT NULL,
    sources TEXT NOT NULL, sentences TEXT NOT NULL, models TEXT NOT NULL
);
"""
RATINGS = ("up", "down")


class FeedbackStore:
    """One SQLite file under $RAG_HOME, shared by every UI session (WAL, a lock per process)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def record(self, answer_id: str, kb: str, answer: dict[str, object], rating: str,
               comment: str = "") -> None:
        """Store (or replace: the user changed their mind) the judgement of one answer."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        sources = [
            {k: s.get(k) for k in ("n", "cited", "chunk_id", "title", "source", "page", "section",
                                   "text", "scores")}
            for s in answer.get("sources", [])  # type: ignore[attr-defined]
        ]
        row = (answer_id, time.time(), kb, answer["question"], answer.get("standalone_query"),
               answer["text"], rating, comment.strip(), json.dumps(sources),
               json.dumps(answer.get("sentences", [])), json.dumps(answer.get("models", {})))
        with self._lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO feedback VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)

    def count(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def rows(self, rating: str | None = None, kb: str | None = None) -> list[dict[str, object]]:
        """Judged answers, oldest first, optionally of one rating and one knowledge base."""
        where = {"rating": rating, "kb": kb}
        where = {k: v for k, v in where.items() if v}
        sql = ("SELECT * FROM feedback" + (" WHERE " if where else "")
               + " AND ".join(f"{k} = ?" for k in where) + " ORDER BY created")
        with self._lock:
            cursor = self.db.execute(sql, tuple(where.values()))
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        out = []
        for row in rows:
            item = dict(zip(names, row, strict=True))
            for key in ("sources", "sentences", "models"):
                item[key] = json.loads(item[key])
            out.append(item)
        return out

    def export_jsonl(self, out: IO[str], rating: str | None = None, kb: str | None = None) -> int:
        """Write one JSON object per judged answer (a valid `rag eval answers` question set);
        returns how many."""
        rows = self.rows(rating, kb)
        for item in rows:
            # Also a question set for `rag eval answers`: an approved answer is the reference.
            item["id"] = item["answer_id"]
            item["reference"] = item["answer"] if item["rating"] == "up" else None
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
        return len(rows)

    def close(self) -> None:
        self.db.close()


def feedback_path(home: Path) -> Path:
    return home / "feedback.sqlite"
