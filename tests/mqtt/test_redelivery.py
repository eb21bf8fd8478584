"""The memory of answered QoS 1 requests (runtime/mqtt/redelivery.py), as a table: a
redelivered request is answered again with the same bytes while it is remembered, and
the memory is bounded by count (oldest first) and by age."""

from __future__ import annotations

import time

import pytest

from runtime.mqtt.redelivery import RedeliveryCache

# Steps: ("remember", key, reply) | ("forget", key) | ("wait", seconds).
Step = tuple[object, ...]


@pytest.mark.parametrize(
    ("ttl_s", "max_entries", "steps", "answers"),
    [
        pytest.param(60, 8, [("remember", b"1", "r1")], {b"1": "r1", b"2": None},
                     id="answered again, unknown ones not"),
        pytest.param(60, 8, [("remember", None, "r0")], {b"": None},
                     id="no correlation data: nothing to remember"),
        pytest.param(60, 8, [("remember", b"1", "r1"), ("forget", b"1")], {b"1": None},
                     id="forgotten"),
        pytest.param(60, 8, [("remember", b"1", "old"), ("remember", b"1", "new")],
                     {b"1": "new"}, id="the newest reply wins"),
        pytest.param(
            60, 2, [("remember", b"1", "r1"), ("remember", b"2", "r2"), ("remember", b"3", "r3")],
            {b"1": None, b"2": "r2", b"3": "r3"}, id="bounded by count, oldest out first",
        ),
        pytest.param(
            60, 2,
            [("remember", b"1", "r1"), ("remember", b"2", "r2"), ("remember", b"1", "r1"),
             ("remember", b"3", "r3")],
            {b"1": "r1", b"2": None, b"3": "r3"}, id="remembering again makes it newest",
        ),
        pytest.param(0.05, 8, [("remember", b"1", "r1"), ("wait", 0.1)], {b"1": None},
                     id="too old to answer"),
        pytest.param(
            0.05, 8, [("remember", b"1", "r1"), ("wait", 0.1), ("remember", b"2", "r2")],
            {b"1": None, b"2": "r2"}, id="old ones go as new ones come",
        ),
    ],
)  # fmt: skip
def test_redelivery_cache(
    ttl_s: float, max_entries: int, steps: list[Step], answers: dict[bytes, str | None]
) -> None:
    cache: RedeliveryCache[str] = RedeliveryCache(ttl_s=ttl_s, max_entries=max_entries)
    for step in steps:
        if step[0] == "remember":
            cache.remember(step[1], step[2])  # type: ignore[arg-type]
        elif step[0] == "forget":
            cache.forget(step[1])  # type: ignore[arg-type]
        else:
            time.sleep(step[1])  # type: ignore[arg-type]
    assert {key: cache.get(key) for key in answers} == answers
