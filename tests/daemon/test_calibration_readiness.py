"""Calibration never delays another application: with the demo's candidates hanging in
calibration (a backend that sleeps, put in the real backend table), an application with
nothing to measure is served at once, and the demo is served after its budget, on the
target that did not hang."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from runtime.config import Settings
from runtime.daemon import Daemon
from tests.support.serving_models import write_linear_package
from tests.support.sleepy_backend import serve_onnx_with

REPO = Path(__file__).resolve().parents[2]
DEMO = "part-id-reader"
PLAIN = "plain-reader"
BUDGET_S = 4.0


@pytest.mark.slow
def test_a_calibrating_app_never_delays_another(
    tmp_path: Path, demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_onnx_with(monkeypatch, "SleepyBackend")
    store = tmp_path / "store"
    shutil.copytree(demo_store / DEMO, store / DEMO)
    write_linear_package(store, app=PLAIN)  # no golden set: nothing to measure
    settings = Settings(
        demo=False,
        paths={"state_dir": tmp_path / "state", "store_dir": store,
               "cache_dir": tmp_path / "cache", "profiles_dir": REPO / "device_profiles"},
        api={"port": 0},
        applications=[{"name": DEMO}, {"name": PLAIN}],
        calibration={"tensor_budget_s": BUDGET_S},
    )  # fmt: skip

    async def main() -> tuple[float, set[str], float, str]:
        daemon = Daemon(settings, env={})
        run = asyncio.create_task(daemon.run())
        started = time.monotonic()
        plain_at, seen = 0.0, set()
        while time.monotonic() - started < 120:
            await asyncio.sleep(0.05)
            if daemon.service is None:
                continue
            served = {s.app for s in daemon.service.slots()}
            if PLAIN in served and not plain_at:
                plain_at, seen = time.monotonic() - started, served
            if DEMO in served:
                break
        demo_at = time.monotonic() - started
        backend = daemon.service.slot(DEMO).backend_info.backend if daemon.service else ""
        daemon.request_stop()
        await run
        return plain_at, seen, demo_at, backend

    plain_at, seen_then, demo_at, demo_backend = asyncio.run(main())
    assert plain_at > 0 and DEMO not in seen_then  # served while the demo was calibrating
    assert demo_at >= BUDGET_S  # the demo waited for its own budget, no longer than it
    assert demo_backend == "openvino"  # the hung target was dropped
