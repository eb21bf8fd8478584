"""The store-and-forward buffer: written before publish, kept until acknowledged, bounded,
in order, and still there after the daemon restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.mqtt.buffer import BufferFull, StoreAndForward


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _open(path: Path, **kw: object) -> StoreAndForward:
    args: dict[str, object] = {"max_bytes": 1 << 20, "max_age_s": 3600}
    args.update(kw)
    return StoreAndForward(path, **args)  # type: ignore[arg-type]


def test_messages_survive_a_restart_in_order_until_acked(tmp_path: Path) -> None:
    path = tmp_path / "buf.sqlite"
    buf = _open(path)
    ids = [
        buf.put(f"r/{i}", f"reply {i}".encode(), properties={"correlation_data": bytes([i, 0])}).id
        for i in range(5)
    ]
    buf.ack(ids[1])
    buf.close()  # the daemon stops (or dies: WAL keeps committed rows)

    again = _open(path)
    pending = again.pending()
    assert [e.topic for e in pending] == ["r/0", "r/2", "r/3", "r/4"]
    assert pending[1].payload == b"reply 2"
    assert pending[1].properties["correlation_data"] == bytes([2, 0])
    assert again.stats.entries == 4
    assert again.pending(after=pending[1].id) == pending[2:]
    again.close()


def test_drop_oldest_makes_room_and_counts(tmp_path: Path) -> None:
    buf = _open(tmp_path / "b.sqlite", max_bytes=4096, policy="drop_oldest")
    for i in range(20):
        buf.put("t", bytes([i]) * 1000)
    kept = buf.pending(limit=100)
    assert buf.stats.bytes <= 4096
    assert kept[-1].payload == bytes([19]) * 1000  # the newest is always kept
    assert [e.payload[0] for e in kept] == sorted(e.payload[0] for e in kept)
    assert buf.stats.dropped_full == 20 - len(kept)
    assert buf.stats.dropped == buf.stats.dropped_full


def test_reject_new_keeps_the_old_and_counts(tmp_path: Path) -> None:
    buf = _open(tmp_path / "b.sqlite", max_bytes=4096, policy="reject_new")
    accepted = 0
    for i in range(10):
        try:
            buf.put("t", bytes([i]) * 1000)
            accepted += 1
        except BufferFull as e:
            assert "full" in e.message
    assert accepted == 4
    assert [e.payload[0] for e in buf.pending()] == [0, 1, 2, 3]
    assert buf.stats.rejected == 6
    buf.ack(buf.pending()[0].id)  # room again
    buf.put("t", b"x" * 1000)
    assert buf.stats.rejected == 6


def test_a_message_bigger_than_the_buffer_is_refused(tmp_path: Path) -> None:
    buf = _open(tmp_path / "b.sqlite", max_bytes=4096)
    with pytest.raises(BufferFull):
        buf.put("t", b"x" * 5000)
    assert buf.stats.rejected == 1 and buf.stats.entries == 0


def test_old_messages_expire_and_are_counted(tmp_path: Path) -> None:
    clock = Clock()
    buf = _open(tmp_path / "b.sqlite", max_age_s=60, clock=clock)
    buf.put("t", b"old")
    clock.now += 30
    buf.put("t", b"newer")
    clock.now += 40  # the first is now 70 s old
    assert buf.expire() == 1
    assert [e.payload for e in buf.pending()] == [b"newer"]
    assert buf.stats.dropped_age == 1


def test_ack_twice_is_harmless(tmp_path: Path) -> None:
    buf = _open(tmp_path / "b.sqlite")
    e = buf.put("t", b"x")
    assert buf.ack(e.id) is True
    assert buf.ack(e.id) is False
    assert buf.stats.entries == 0 and buf.stats.bytes == 0 and buf.stats.acked == 1


def test_staged_messages_reach_disk_at_commit_and_ids_never_repeat(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "b.sqlite"
    buf = _open(path)
    first = buf.put("t", b"one")
    reader = sqlite3.connect(str(path))  # an operator looking at the buffer meanwhile
    assert reader.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert buf.staged == 1 and buf.stats.entries == 1
    buf.commit()
    assert reader.execute("SELECT id, payload FROM outbox").fetchall() == [(first.id, b"one")]
    buf.ack(first.id)
    buf.flush()
    buf.close()
    # Every row is gone, yet a restarted buffer does not hand out an id twice: a late
    # PUBACK for the old id must not delete a new message.
    again = _open(path)
    assert again.put("t", b"two").id > first.id
    again.close()
    reader.close()


def test_discarded_staged_messages_are_counted_as_write_errors(tmp_path: Path) -> None:
    buf = _open(tmp_path / "b.sqlite")
    kept = buf.put("t", b"kept")
    buf.commit()
    buf.put("t", b"lost")
    buf.discard_staged()
    assert buf.stats.write_errors == 1 and buf.stats.entries == 1
    assert [e.id for e in buf.pending()] == [kept.id]


def test_a_write_the_disk_refuses_is_counted_and_the_buffer_goes_on(tmp_path: Path) -> None:
    buf = _open(tmp_path / "b.sqlite")
    kept = buf.put("t", b"kept")
    buf.commit()
    # The database refuses inserts from now on, as a full or failing disk would.
    buf._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    buf.put("t", b"refused")
    buf.commit()  # logged and counted, not raised
    assert buf.stats.write_errors == 1
    assert buf.stats.entries == 1 and buf.staged == 0
    assert [e.id for e in buf.pending()] == [kept.id]
    buf._db.execute("DROP TRIGGER refuse")
    again = buf.put("t", b"again")
    buf.commit()
    assert [e.id for e in buf.pending()] == [kept.id, again.id]
