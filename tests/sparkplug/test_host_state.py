"""Which primary host STATE the edge node believes, on a clock the test holds (the node's
behaviour on a real broker: tests/sparkplug/test_edge_node.py)."""

from __future__ import annotations

import orjson

from runtime.sparkplug.host_state import HostState

NOW = 1_800_000_000.0  # this box's clock, Unix seconds


def _state(online: bool, ts_ms: float) -> bytes:
    return orjson.dumps({"online": online, "timestamp": int(ts_ms)})


def test_far_future_older_and_malformed_states_are_ignored_and_reset_forgets() -> None:
    counters = {"state_ignored": 0}
    host = HostState(300.0, counters, clock=lambda: NOW)
    ms = NOW * 1000
    assert host.read(_state(True, ms)) is True
    assert host.read(_state(False, ms + 301_000)) is None  # 301 s ahead: not believed
    assert host.read(_state(False, ms + 299_000)) is False  # a host a little ahead
    assert host.read(_state(True, ms + 1_000)) is None  # older than the one in force
    for junk in (b"", b"{}", b'{"online": "yes"}', b"\xff" * 10):
        assert host.read(junk) is None
    assert counters["state_ignored"] == 5  # the far-future one and the four malformed
    host.reset()  # a new session
    assert host.read(_state(True, ms + 1_000)) is True
