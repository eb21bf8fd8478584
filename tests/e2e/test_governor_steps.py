"""A real daemon on the demo store, its governor reading a fixture host tree the test
rewrites: pressure -> a lighter variant within the sustain time with zero failed requests
under continuous HTTP load; pressure gone -> back up only after the hold; a signal
flapping around the threshold -> no swap; an operator pin wins (the governor reports)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.governor_daemon import (
    APP,
    APP_SETTINGS,
    GOOD,
    HOLD_S,
    SUSTAIN_S,
    Daemon,
    governor_section,
    run_daemon,
)
from tests.support.pressure_host import PressureHost


class Load:
    """Continuous inference requests on a thread; counts failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    r = http.post(f"/v2/models/{APP}/infer", json=GOOD)
                except httpx.HTTPError as e:
                    self.failed.append(repr(e))
                    continue
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"{r.status_code} {r.text[:200]}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def swaps(d: Daemon) -> int:
    return int(d.status()["governor"]["swaps"].get("ok", 0))


@pytest.mark.slow
def test_step_down_under_pressure_and_back_up_after_the_hold(
    tmp_path: Path, demo_store: Path
) -> None:
    host = PressureHost(tmp_path / "host")
    extra = APP_SETTINGS + governor_section(host.root)
    with run_daemon(tmp_path, demo_store, extra) as d:
        first = d.serving()
        gov = d.status()["governor"]
        assert gov["state"] == "normal" and gov["counts"] == {}
        if not lighter_rungs(d, first):
            pytest.skip(f"{first} is already the demo's lightest variant here (no OpenVINO)")
        with Load(d.url) as load:
            time.sleep(0.5)
            host.memory(12.0)  # soft: under 15% available
            took = d.wait(lambda: d.serving() != first, "the step down")
            stepped = d.serving()
            assert d.peak(stepped) < d.peak(first)
            assert took >= SUSTAIN_S * 0.9  # soft pressure waits for the sustain time
            gov = d.status()["governor"]
            last = gov["last_action"]
            assert (last["action"], last["app"], last["variant"], last["to"]) == (
                "step_down", APP, first, stepped,
            )  # fmt: skip
            assert "memory_available_pct 12.0%" in last["reason"]
            assert took < SUSTAIN_S + last["swap_s"] + 10  # sustain + one swap (+ load)
            # Out of pressure but not recovered (17% < 15% + half the gap): it stays,
            # SIGHUP (settings re-read, the box rebuilt, every application reselected)
            # included.
            host.memory(17.0)
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(HOLD_S + 1)
            assert d.serving() == stepped
            assert d.status()["governor"]["stepped"][APP]["came_from"] == [first]
            host.memory(50.0)
            recovered_at = time.monotonic()
            d.wait(lambda: d.serving() == first, "the step back up")
            assert time.monotonic() - recovered_at >= HOLD_S * 0.9  # only after the hold
            time.sleep(0.5)
        assert load.failed == [] and load.ok > 50
        gov = d.status()["governor"]
        assert gov["swaps"] == {"ok": 2, "failed": 0} and gov["stepped"] == {}
        page = httpx.get(f"{d.url}/").text
        assert "<h2>governor</h2>" in page and "memory_available_pct" in page
        metrics = httpx.get(f"{d.url}/metrics").text
        assert 'headframe_governor_decisions_total{action="step_down"} 1.0' in metrics
        assert 'headframe_governor_decisions_total{action="step_up"} 1.0' in metrics


@pytest.mark.slow
def test_a_flapping_signal_causes_no_swap_and_a_pin_wins(tmp_path: Path, demo_store: Path) -> None:
    host = PressureHost(tmp_path / "host")
    extra = APP_SETTINGS + governor_section(host.root)
    with run_daemon(tmp_path, demo_store, extra) as d:
        first = d.serving()
        for i in range(16):  # 14% / 16% every 0.4 s: never SUSTAIN_S under 15% in a row
            host.memory(14.0 if i % 2 == 0 else 16.0)
            time.sleep(0.4)
        host.memory(50.0)
        assert swaps(d) == 0 and d.serving() == first
        # An operator pin on what serves now: the governor only reports.
        r = httpx.post(f"{d.url}/admin/models/{APP}/select", json={"variant": first}, timeout=60)
        assert r.status_code == 200, r.text
        host.memory(3.0)  # hard

        def reported() -> list[dict[str, Any]]:
            return [e for e in d.status()["governor"]["recent"] if e["action"] == "pinned"]

        d.wait(lambda: bool(reported()), "the governor to report the pin")
        (event,) = reported()  # once per pressure episode, not once per sample
        assert event["variant"] == first and event["to"] != first and "pinned" in event["pin"]
        time.sleep(1.0)
        assert d.serving() == first and swaps(d) == 0 and len(reported()) == 1


def lighter_rungs(d: Daemon, first: str) -> list[str]:
    app = next(a for a in d.status()["applications"] if a["app"] == APP)
    return [c["variant"] for c in app["selection"]["ranked"]
            if c["peak_memory_bytes"] < d.peak(first)]  # fmt: skip


def headframe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


@pytest.mark.slow
def test_dry_run_decides_and_reports_but_never_swaps(tmp_path: Path, demo_store: Path) -> None:
    host = PressureHost(tmp_path / "host")
    extra = APP_SETTINGS + governor_section(host.root, "dry_run = true\n")
    with run_daemon(tmp_path, demo_store, extra) as d:
        first = d.serving()
        if not lighter_rungs(d, first):
            pytest.skip(f"{first} is already the demo's lightest variant here (no OpenVINO)")
        host.memory(3.0)
        d.wait(lambda: bool(d.status()["governor"]["counts"].get("step_down")), "a decision")
        last = d.status()["governor"]["last_action"]
        assert (last["action"], last["dry_run"], last["variant"]) == ("step_down", True, first)
        time.sleep(0.5)
        assert d.serving() == first and swaps(d) == 0
        # The CLI shows the same, as a table and as JSON.
        shown = headframe("governor", "status", "--url", d.url)
        assert shown.returncode == 0, shown.stderr
        assert "dry run" in shown.stdout and "memory_available_pct" in shown.stdout
        assert "hard" in shown.stdout and f"step_down {APP} {first} ->" in shown.stdout
        as_json = headframe("governor", "status", "--url", d.url, "--json")
        assert json.loads(as_json.stdout)["last_action"]["action"] == "step_down"
    gone = headframe("governor", "status", "--url", d.url)
    assert gone.returncode == 1 and "no daemon answering" in gone.stderr


@pytest.mark.slow
def test_a_failed_swap_keeps_the_current_variant_and_backs_off(
    tmp_path: Path, demo_store: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    host = PressureHost(tmp_path / "host")
    extra = APP_SETTINGS + governor_section(host.root)  # backoff_s = 1.0
    with run_daemon(tmp_path, store, extra) as d:
        first = d.serving()
        lighter = lighter_rungs(d, first)
        if not lighter:
            pytest.skip(f"{first} is already the demo's lightest variant here (no OpenVINO)")
        target = max(lighter, key=d.peak)  # one rung down
        for f in (store / APP / "1.0.0" / "variants" / target).glob("model*"):
            f.unlink()  # the rung's file is gone: its load fails
        with Load(d.url) as load:
            host.memory(3.0)
            d.wait(lambda: d.status()["governor"]["swaps"]["failed"] >= 1, "a failed swap")
            gov = d.status()["governor"]
            assert gov["last_action"]["action"] == "step_down_failed"
            assert target in gov["last_action"]["to"]
            assert d.serving() == first
            time.sleep(1.5)
        assert load.failed == [] and load.ok > 10
        failed = d.status()["governor"]["swaps"]["failed"]
        assert 1 <= failed <= 3  # once a back-off (1 s), not once a sample (0.1 s)
        assert d.serving() == first


@pytest.mark.slow
def test_lasting_pressure_steps_down_rung_by_rung_and_recovery_climbs_back_one_at_a_time(
    tmp_path: Path, demo_store: Path
) -> None:
    host = PressureHost(tmp_path / "host")
    extra = APP_SETTINGS + governor_section(host.root)
    with run_daemon(tmp_path, demo_store, extra) as d:
        first = d.serving()
        if len(lighter_rungs(d, first)) < 2:
            pytest.skip(f"fewer than two variants lighter than {first} qualify here")
        seen = [first]

        def moved() -> bool:
            now = d.serving()
            if now != seen[-1]:
                seen.append(now)
                return True
            return False

        with Load(d.url) as load:
            host.memory(12.0)  # soft, and it lasts
            d.wait(moved, "the first step down")
            t1 = time.monotonic()
            d.wait(moved, "the second step down")
            assert time.monotonic() - t1 >= SUSTAIN_S * 0.9  # the sustain again, per rung
            assert d.peak(seen[2]) < d.peak(seen[1]) < d.peak(seen[0])
            host.memory(50.0)
            d.wait(moved, "the first step up")
            t2 = time.monotonic()
            assert seen[3] == seen[1]  # one rung at a time, the way it came
            d.wait(moved, "the second step up")
            assert time.monotonic() - t2 >= HOLD_S * 0.9  # the hold again, per rung
            assert seen[4] == first
        assert load.failed == []
        assert d.status()["governor"]["swaps"] == {"ok": 4, "failed": 0}


@pytest.mark.slow
def test_a_zone_near_its_trip_point_steps_down_to_a_faster_variant(
    tmp_path: Path, demo_store: Path
) -> None:
    host = PressureHost(tmp_path / "host")
    extra = APP_SETTINGS + governor_section(host.root)
    with run_daemon(tmp_path, demo_store, extra) as d:
        first = d.serving()
        app = next(a for a in d.status()["applications"] if a["app"] == APP)
        p50 = {c["variant"]: (c["measured"] or {}).get("p50_us") or c["latency_us"]
               for c in app["selection"]["ranked"]}  # fmt: skip
        if not any(v < p50[first] for v in p50.values()):
            pytest.skip(f"{first} is already the fastest qualifying variant measured here")
        host.zone(0, "x86_pkg_temp", 98.0, trip_c=100.0)  # 2 C from its passive trip: hard
        d.wait(lambda: d.serving() != first, "the thermal step down")
        last = d.status()["governor"]["last_action"]
        assert (last["kind"], last["level"]) == ("thermal", "hard")
        assert (
            "thermal_margin_c 2.0 C (thermal_zone0 (x86_pkg_temp) 98.0 C, trip 100 C)"
            in (last["reason"])
        )
        assert p50[d.serving()] < p50[first]
