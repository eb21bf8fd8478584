"""Store and forward: a SQLite (WAL) outbox for QoS 1 replies and results.

A message is written here *before* it leaves the process and deleted only when the
broker acknowledges it (PUBACK), so a reply survives the broker being away and the daemon
being killed. Writes are grouped: ``put`` stages a message and ``commit`` writes every
staged one in a single statement. The outbox commits at the end of each event-loop pass,
and the MQTT connection commits before it sends any bytes, so nothing is published (and
no request acknowledged) before its reply is on disk; a crash before the commit loses
only replies that never left, whose requests the broker delivers again. The store is
bounded by bytes and by age; when full it either drops the oldest entries or refuses the
new one (``policy``), and counts every drop. Rows come back in insertion order for replay.

All methods run on one thread (the bridge's event loop); SQLite itself is not shared.
``synchronous=NORMAL`` in WAL mode survives a process crash (what the daemon faces when
killed); ``sync="full"`` also survives power loss, at the price of an fsync per write.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from runtime.errors import HeadframeError

log = logging.getLogger(__name__)

ACK_BATCH = 256  # acknowledged rows deleted together (see ack)
_INSERT_BATCH = 500  # staged rows per INSERT (8 values each, well under SQLite's limit)

Policy = Literal["drop_oldest", "reject_new"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    props TEXT NOT NULL,
    size INTEGER NOT NULL
)
"""


class BufferFull(HeadframeError):
    """The outbox is full and its policy is reject_new (or the message alone is too big)."""

    code = "buffer_full"


@dataclass(frozen=True)
class Entry:
    """One buffered message. ``properties``: correlation_data (bytes), user (list of pairs),
    content_type (str), message_expiry (int seconds) when present."""

    id: int
    created: float
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class BufferStats:
    entries: int = 0
    bytes: int = 0
    max_bytes: int = 0
    written: int = 0
    acked: int = 0
    dropped_full: int = 0  # oldest entries dropped to make room (drop_oldest)
    dropped_age: int = 0  # entries older than max_age_s
    rejected: int = 0  # new entries refused (reject_new, or bigger than the whole buffer)
    write_errors: int = 0  # entries the disk refused (sent anyway, not kept)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_age + self.rejected

    @property
    def fill(self) -> float:
        return self.bytes / self.max_bytes if self.max_bytes else 0.0


def _encode_props(props: dict[str, Any]) -> str:
    if not props:
        return "{}"
    out = dict(props)
    cd = out.pop("correlation_data", None)
    if cd is not None:
        out["correlation_data_b64"] = base64.b64encode(cd).decode("ascii")
    return orjson.dumps(out).decode("utf-8")


def _decode_props(text: str) -> dict[str, Any]:
    props: dict[str, Any] = json.loads(text)
    cd = props.pop("correlation_data_b64", None)
    if cd is not None:
        props["correlation_data"] = base64.b64decode(cd)
    if "user" in props:
        props["user"] = [tuple(p) for p in props["user"]]
    return props


class StoreAndForward:
    """The outbox. Open it once per daemon; ``close()`` on shutdown."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        policy: Policy = "drop_oldest",
        sync: Literal["normal", "full"] = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.policy = policy
        self._clock = clock
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        self._db.execute(_SCHEMA)
        count, total = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox"
        ).fetchone()
        self.stats = BufferStats(entries=count, bytes=total, max_bytes=max_bytes)
        self._sizes: dict[int, int] = {}  # rows written by this process: id -> size
        self._acked: set[int] = set()  # acknowledged, deleted at the next flush
        self._staged: list[tuple[Any, ...]] = []  # put, not yet committed
        # Ids are given here (not by SQLite) so that a staged message has its id at once.
        self._next_id = (
            self._db.execute(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM outbox), 0), "
                "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))"
            ).fetchone()[0]
            + 1
        )
        self._last_expire = 0.0
        if count:
            log.info(
                "mqtt buffer %s: %d messages (%d bytes) waiting from before", path, count, total
            )
        self.expire()

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> Entry:
        """Stage one message (``commit`` writes it); returns it with its id. Raises
        BufferFull (counted) when it cannot be kept."""
        props = _encode_props(properties or {})
        size = len(payload) + len(topic) + len(props)
        if size > self.max_bytes:
            self.stats.rejected += 1
            raise BufferFull(f"message of {size} bytes is larger than the whole buffer")
        if self._clock() - self._last_expire >= 1.0:  # once a second is enough
            self.expire()
        if self.stats.bytes + size > self.max_bytes:
            if self.policy == "reject_new":
                self.stats.rejected += 1
                raise BufferFull(
                    f"store-and-forward buffer full ({self.stats.bytes} of {self.max_bytes} bytes)"
                )
            self._drop_oldest(self.stats.bytes + size - self.max_bytes)
        now = self._clock()
        entry_id = self._next_id
        self._next_id += 1
        self._staged.append((entry_id, now, topic, payload, qos, int(retain), props, size))
        self.stats.entries += 1
        self.stats.bytes += size
        self.stats.written += 1
        self._sizes[entry_id] = size
        return Entry(entry_id, now, topic, payload, qos, retain, properties or {})

    def commit(self) -> None:
        """Write every staged message, in one statement (one transaction) per 500. A write
        the disk refuses is logged and its messages dropped from the buffer (counted as
        write_errors; a reply already handed to the client still goes out): callers go
        on, and the figures stay true."""
        while self._staged:
            rows = self._staged[:_INSERT_BATCH]
            values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            try:
                self._db.execute(
                    "INSERT INTO outbox (id, created, topic, payload, qos, retain, props, size) "
                    f"VALUES {values}",
                    [v for row in rows for v in row],
                )
            except sqlite3.Error as e:
                log.error("mqtt buffer %s: cannot store %d replies: %s", self.path, len(rows), e)
                self.discard_staged()
                return
            del self._staged[: len(rows)]

    @property
    def staged(self) -> int:
        return len(self._staged)

    def discard_staged(self) -> None:
        """Forget the staged messages (their write failed); counted as write errors."""
        for row in self._staged:
            self._sizes.pop(row[0], None)
            self.stats.entries -= 1
            self.stats.bytes -= row[7]
        self.stats.write_errors += len(self._staged)
        self._staged = []

    def _drop_oldest(self, need: int) -> None:
        self.flush()
        freed, ids = 0, []
        for row_id, size in self._db.execute("SELECT id, size FROM outbox ORDER BY id"):
            ids.append(row_id)
            freed += size
            if freed >= need:
                break
        self._delete(ids)
        self.stats.dropped_full += len(ids)
        log.warning("mqtt buffer full: dropped the %d oldest messages (%d bytes)", len(ids), freed)

    def _delete(self, ids: list[int]) -> int:
        if not ids:
            return 0
        self.flush()
        removed, freed = 0, 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            row = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE id IN ({marks})", chunk
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
            for i in chunk:
                self._sizes.pop(i, None)
            removed += row[0]
            freed += row[1]
        self.stats.entries -= removed
        self.stats.bytes -= freed
        return int(removed)

    def ack(self, entry_id: int) -> bool:
        """The broker acknowledged this message: forget it. False if it was already gone
        (dropped or acked before). Deletes are batched (``flush``): a crash before the
        flush only means an acknowledged reply is sent once more, which QoS 1 allows."""
        if entry_id in self._acked:
            return False
        size = self._sizes.pop(entry_id, None)
        if size is None:  # written before a restart, or already dropped
            row = self._db.execute("SELECT size FROM outbox WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                return False
            size = row[0]
        self._acked.add(entry_id)
        self.stats.entries -= 1
        self.stats.bytes -= size
        self.stats.acked += 1
        if len(self._acked) >= ACK_BATCH:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the staged rows, then delete the acknowledged ones in one transaction:
        after a flush the database holds exactly what the buffer does."""
        self.commit()  # an acknowledged row may still be staged
        if not self._acked:
            return
        ids = [(i,) for i in self._acked]
        self._acked.clear()
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", ids)
        finally:
            self._db.execute("COMMIT")

    def expire(self) -> int:
        """Drop entries older than max_age_s; returns how many."""
        self._last_expire = self._clock()
        cutoff = self._last_expire - self.max_age_s
        self.commit()
        # Rows are in time order, so a look at the oldest is enough on the hot path.
        oldest = self._db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
        if oldest is None or oldest[0] >= cutoff:
            return 0
        ids = [r[0] for r in self._db.execute("SELECT id FROM outbox WHERE created < ?", (cutoff,))]
        n = self._delete(ids)
        if n:
            self.stats.dropped_age += n
            log.warning("mqtt buffer: dropped %d messages older than %ss", n, self.max_age_s)
        return n

    def pending(self, *, after: int = 0, limit: int = 100) -> list[Entry]:
        """Messages with id > after, oldest first."""
        self.flush()
        rows = self._db.execute(
            "SELECT id, created, topic, payload, qos, retain, props FROM outbox "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            Entry(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), _decode_props(r[6]))
            for r in rows
        ]

    def last_id(self) -> int:
        """The newest id given so far: every message now in the buffer has one <= this."""
        return self._next_id - 1

    def close(self) -> None:
        try:
            self.flush()
            self._db.close()
        except sqlite3.Error as e:  # closing must not stop a shutdown
            log.warning("mqtt buffer: close failed: %s", e)
