"""The change path: every change of what an application runs, one at a time, recorded, and
undone when it fails; the documented precedence (operator pin > settings > governor >
automatic; a fleet activation drops the governor's override) whatever order racing
callers arrive in. Real ONNX models, served over real HTTP on loopback while it happens."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.service.changes import Change, Pinned
from tests.service.conftest import APP, Served, TwoVersions, served

Race = Callable[[Served, TwoVersions], Awaitable[None]]


def _body(two: TwoVersions) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                        "data": two.x.reshape(-1).tolist()}]}  # fmt: skip


@contextmanager
def under_load(s: Served, two: TwoVersions, clients: int = 3) -> Iterator[list[str]]:
    """HTTP KServe clients firing the whole time; yields the failures they saw."""
    stop = threading.Event()
    failures: list[str] = []
    body = _body(two)

    def fire() -> None:
        with httpx.Client(base_url=s.url, timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"/v2/models/{APP}/infer", json=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")

    threads = [threading.Thread(target=fire) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield failures
    finally:
        stop.set()
        for t in threads:
            t.join()


def _no_overlap(changes: list[Change]) -> None:
    """Each change ended before the next began: one at a time, never two swaps at once."""
    spans = sorted((c.started, c.ended, f"{c.action} by {c.by}") for c in changes)
    assert all(end is not None for _, end, _ in spans), spans
    for (_, end, what), (start, _, after) in itertools.pairwise(spans):
        assert end is not None and start >= end, f"{what} and {after} overlapped: {spans}"


def _race(s: Served, two: TwoVersions, first: Awaitable[Any], second: Awaitable[Any]) -> list[Any]:
    async def both() -> list[Any]:
        return list(await asyncio.gather(first, second, return_exceptions=True))

    return s.call(lambda: both())  # type: ignore[no-any-return]


def _recorded(s: Served) -> list[Change]:
    seen: list[Change] = []
    s.changes.add_listener(lambda c: seen.append(c) if c.ended is not None else None)
    return seen


@pytest.mark.parametrize("pin_first", [True, False], ids=["pin-first", "governor-first"])
def test_pin_against_a_governor_step(two_versions: TwoVersions, tmp_path: Path,
                                     pin_first: bool) -> None:  # fmt: skip
    two = two_versions
    with served(two, tmp_path / "state") as s, under_load(s, two) as failures:
        seen = _recorded(s)
        pin = s.changes.pin(APP, "large", "http")
        step = s.changes.govern(APP, "small", "memory pressure")  # a step the pin must beat
        results = _race(s, two, *((pin, step) if pin_first else (step, pin)))
        refused = [r for r in results if isinstance(r, Pinned)]
        # Pin first: the governor is refused (it only reports a pinned application).
        assert len(refused) == (1 if pin_first else 0), results
        assert not [r for r in results if isinstance(r, BaseException) and r not in refused]
        assert s.serving() == ("1.0.0", "large")  # the operator's pin wins either way
        assert s.box.pin_for(APP).source == "operator"
        # Unpinned, the governor's override is next in line where its step got through.
        s.call(lambda: s.changes.pin(APP, None, "http"))
        assert s.serving() == ("1.0.0", "large" if pin_first else "small")
        assert s.box.pin_for(APP).source == ("auto" if pin_first else "governor")
    assert not failures, failures[:3]
    _no_overlap(seen)
    assert {c.by for c in seen} >= {"http", "governor"}


@pytest.mark.parametrize("pin_first", [True, False], ids=["pin-first", "fleet-first"])
def test_fleet_activation_against_a_pin(two_versions: TwoVersions, tmp_path: Path,
                                        pin_first: bool) -> None:  # fmt: skip
    two = two_versions
    with served(two, tmp_path / "state") as s, under_load(s, two) as failures:
        seen = _recorded(s)
        s.call(lambda: s.changes.govern(APP, "small", "memory pressure"))  # an override
        # The fleet's measured winner is "small"; the operator pins "large" meanwhile.
        fleet = s.changes.activate(two.package("2.0.0"), "small", why="activate 2.0.0")
        pin = s.changes.pin(APP, "large", "http")
        results = _race(s, two, *((pin, fleet) if pin_first else (fleet, pin)))
        assert not any(isinstance(r, BaseException) for r in results), results
        assert s.serving() == ("2.0.0", "large")  # the new version, the operator's variant
        assert s.box.pin_for(APP, governed=True).source == "operator"
        s.call(lambda: s.changes.pin(APP, None, "http"))
        # The fleet dropped the governor's override: the new version's own choice.
        assert s.box.pin_for(APP).source == "auto"
        assert s.serving() == ("2.0.0", "large")  # the test loader's automatic choice
    assert not failures, failures[:3]
    _no_overlap(seen)
    assert {c.by for c in seen} >= {"http", "fleet", "governor"}


@pytest.mark.parametrize("reload_first", [True, False], ids=["reload-first", "fleet-first"])
def test_reload_against_a_fleet_activation(two_versions: TwoVersions, tmp_path: Path,
                                           reload_first: bool) -> None:  # fmt: skip
    two = two_versions
    with served(two, tmp_path / "state") as s, under_load(s, two) as failures:
        seen = _recorded(s)
        s.call(lambda: s.changes.govern(APP, "small", "memory pressure"))
        reload = s.changes.reload(None, "mqtt")
        fleet = s.changes.activate(two.package("2.0.0"), None, why="activate 2.0.0")
        results = _race(s, two, *((reload, fleet) if reload_first else (fleet, reload)))
        assert not any(isinstance(r, BaseException) for r in results), results
        # No pin and the override dropped by the fleet: 2.0.0's automatic choice.
        assert s.box.pin_for(APP).source == "auto"
        assert s.serving() == ("2.0.0", "large")
    assert not failures, failures[:3]
    _no_overlap(seen)
    assert [c.action for c in seen].count("reload") == 1


def test_each_change_undoes_what_it_set_when_it_cannot_load(
    two_versions: TwoVersions, tmp_path: Path
) -> None:
    two = two_versions
    undone: list[str] = []
    with served(two, tmp_path / "state") as s, under_load(s, two) as failures:
        s.call(lambda: s.changes.pin(APP, "small", "http"))
        before = s.box.operator_pin(APP)
        with pytest.raises(KeyError, match="nope"):
            s.call(lambda: s.changes.pin(APP, "nope", "mqtt"))
        assert s.box.operator_pin(APP) == before  # the previous pin, as it was
        s.call(lambda: s.changes.pin(APP, None, "http"))
        s.call(lambda: s.changes.govern(APP, "small", "memory pressure"))
        with pytest.raises(KeyError):
            s.call(lambda: s.changes.govern(APP, "nope", "memory pressure"))
        assert s.box.pin_for(APP).variant == "small"  # the previous override
        with pytest.raises(KeyError):
            s.call(
                lambda: s.changes.activate(
                    two.package("2.0.0"), "nope", why="activate", undo=lambda: undone.append("x")
                )
            )
        assert undone == ["x"]  # the fleet's pointer put back
        assert s.serving() == ("1.0.0", "small")  # the old variant served throughout
        history = s.changes.history()
    assert not failures, failures[:3]
    outcomes = [(h["action"], h["by"], h["outcome"]) for h in history]
    assert ("pin", "mqtt", "failed") in outcomes and ("activate", "fleet", "failed") in outcomes
    failed = next(h for h in history if h["outcome"] == "failed")
    assert "nope" in failed["detail"] and failed["ended"] >= failed["started"]


def test_reload_loads_what_the_box_chooses_now_and_keeps_a_pin(
    two_versions: TwoVersions, tmp_path: Path
) -> None:
    """One meaning for MQTT ``reload`` and Sparkplug's Reload Models: the box's choice now.
    A variant the fleet forced for its one load is not kept; an operator's pin is."""
    two = two_versions
    with served(two, tmp_path / "state") as s:
        s.call(lambda: s.changes.activate(two.package("1.0.0"), "small", why="measured winner"))
        assert s.serving() == ("1.0.0", "small")
        s.call(lambda: s.changes.reload(None, "sparkplug"))
        assert s.serving() == ("1.0.0", "large")  # the box's own choice
        s.call(lambda: s.changes.pin(APP, "small", "http"))
        s.call(lambda: s.changes.reload([APP], "mqtt"))
        assert s.serving() == ("1.0.0", "small")  # the pin holds


def test_the_history_is_on_status_with_who_why_and_outcome(
    two_versions: TwoVersions, tmp_path: Path
) -> None:
    two = two_versions
    with served(two, tmp_path / "state") as s:
        r = httpx.post(f"{s.url}/admin/models/{APP}/select", json={"variant": "small"}, timeout=60)
        assert r.status_code == 200 and r.json()["variant"] == "small"
        s.call(lambda: s.changes.reselect("sighup", two.store, _pick(s, "large"), [APP]))
        doc = s.changes.status()
    assert doc["running"] is None
    rows = [(h["app"], h["action"], h["by"], h["outcome"]) for h in doc["history"]]
    assert rows[0] == (APP, "add", "daemon", "ok")  # the start-up load
    assert (APP, "pin", "http", "ok") in rows
    assert rows[-1] == (APP, "swap", "sighup", "ok")
    assert doc["history"][-1]["detail"] == "1.0.0 large"  # what serves after it


def _pick(s: Served, variant: str) -> Callable[[Any], Any]:
    """A reselect's decision: the box's selection of ``variant`` (loaded as made)."""

    def select(package: Any) -> Any:
        return s.box.select(package.meta, [v.meta for v in package.variants], force=variant)

    return select
