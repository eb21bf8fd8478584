"""The chunks and their full-text index: one SQLite file per pack (stdlib sqlite3, FTS5).

``chunks`` holds each chunk's text and attributes (source file, page, heading) under its
row number, which is also its row in ``vectors.npy``. ``chunks_fts`` is an FTS5 index
over heading and text (porter stemming over unicode61), ranked by BM25. A query is split
into terms and each term is searched as a quoted phrase, OR-ed: "P-203" becomes the
phrase "p 203", so a part number or an error code matches exactly where it is written,
whatever the embedder makes of it; FTS5 query syntax in user text is never interpreted.

Written once by the builder (``TextIndexWriter``); read by ``TextIndex`` with one
read-only, immutable connection per thread (the file never changes once installed).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE chunks(id INTEGER PRIMARY KEY, source TEXT NOT NULL, page INTEGER,
                    heading TEXT, text TEXT NOT NULL);
CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, text, content='chunks',
                    content_rowid='id', tokenize='porter unicode61');
"""
_TERM = re.compile(r"[\w][\w\-./:#]*", re.UNICODE)
MAX_TERMS = 32  # a question's worth; more only slows BM25 down


@dataclass(frozen=True)
class ChunkRow:
    id: int
    source: str
    page: int | None
    heading: str | None
    text: str

    def attributes(self) -> dict[str, Any]:
        return {"file": self.source, "page": self.page, "heading": self.heading}


class TextIndexWriter:
    """Append chunks in id order, then ``finish()`` builds the FTS index."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path))
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
        self.count = 0

    def add(self, rows: Sequence[tuple[str, int | None, str | None, str]]) -> None:
        self._db.executemany(
            "INSERT INTO chunks(id, source, page, heading, text) VALUES (?, ?, ?, ?, ?)",
            [(self.count + i, *r) for i, r in enumerate(rows)],
        )
        self.count += len(rows)

    def finish(self) -> None:
        self._db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
        self._db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
        self._db.commit()
        self._db.execute("VACUUM")
        self._db.close()


def match_expression(query: str) -> str | None:
    """User text -> an FTS5 MATCH expression of quoted phrases OR-ed (None: no terms)."""
    terms = list(dict.fromkeys(t.strip(".:/#-") for t in _TERM.findall(query)))
    terms = [t for t in terms if t][:MAX_TERMS]
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class TextIndex:
    """Read side: BM25 search, chunks by id, ids by attribute filter."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.count = int(self._db().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            uri = f"file:{self.path}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.db = db
        return db

    def search(
        self, query: str, k: int, allowed_sql: tuple[str, list[Any]] | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` (id, BM25 score, higher is better) for ``query``."""
        expr = match_expression(query)
        if expr is None:
            return []
        sql = "SELECT rowid, -bm25(chunks_fts, 0.5, 1.0) FROM chunks_fts WHERE chunks_fts MATCH ?"
        params: list[Any] = [expr]
        if allowed_sql is not None:
            sql += f" AND rowid IN (SELECT id FROM chunks WHERE {allowed_sql[0]})"
            params += allowed_sql[1]
        sql += " ORDER BY bm25(chunks_fts, 0.5, 1.0) LIMIT ?"
        rows = self._db().execute(sql, [*params, k]).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def rows(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        found = self._db().execute(
            f"SELECT id, source, page, heading, text FROM chunks WHERE id IN ({marks})",
            list(ids),
        )
        return {int(r[0]): ChunkRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in found}

    def ids_where(self, where: str, params: list[Any]) -> list[int]:
        return [
            int(r[0]) for r in self._db().execute(f"SELECT id FROM chunks WHERE {where}", params)
        ]

    def size_bytes(self) -> int:
        return self.path.stat().st_size
