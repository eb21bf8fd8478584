"""The shared helpers: one back-off rule, one atomic write, TOML through tomli-w."""

from __future__ import annotations

import math
import random
import tomllib
from pathlib import Path

import pytest

from runtime.catalog.writer import dumps_toml
from runtime.files import atomic_write_bytes
from runtime.retry import backoff_delay, backoff_delays


def test_full_jitter_stays_under_the_growing_cap() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        bound = min(5.0, 0.25 * 2**attempt)
        draws = [backoff_delay(attempt, 0.25, 5.0, rng=rng) for _ in range(50)]
        assert all(0 <= d <= bound for d in draws)
        assert max(draws) > bound / 2  # really spread over [0, bound]


def test_equal_jitter_never_retries_at_once_and_huge_attempts_stay_finite() -> None:
    delays = backoff_delays(0.1, 1.6, rng=random.Random(3))
    seq = [next(delays) for _ in range(10)]
    assert 0.05 <= seq[0] <= 0.1 and all(0.8 <= d <= 1.6 for d in seq[5:])
    assert math.isfinite(backoff_delay(10_000, 0.5, 60.0, jitter="equal"))


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_toml_round_trips_awkward_strings_and_refuses_non_finite() -> None:
    odd = 'quote " back \\ newline \n tab \t bell \x07 del \x7f é'
    data = {"name": odd, "table": {"key with space": odd, "gone": None}, "rows": [{"x": 1.5}]}
    back = tomllib.loads(dumps_toml(data))
    assert back == {"name": odd, "table": {"key with space": odd}, "rows": [{"x": 1.5}]}
    with pytest.raises(ValueError, match="finite"):
        dumps_toml({"t": {"latency": float("nan")}})
