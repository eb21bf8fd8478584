"""A candidate slower than its calibration budget stops measuring at the budget (issue 25,
item 5): its thread was abandoned there but kept a core busy scoring and timing, and when
the process exited while it was inside the runtime, the process died with "terminate
called without an active exception" (exit 134). Now the measuring loop checks the
deadline between calls, so nothing is left running one call after the budget, and the
thread is not a daemon: an interpreter that exits waits for that call instead of tearing
the runtime down under it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from runtime.catalog import Store
from runtime.config import Settings
from runtime.loading.calibrator import measuring_loader
from tests.support.box import box_for
from tests.support.sleepy_backend import SLOW_S, serve_onnx_with
from tests.support.synthetic import local_report, make_profile

pytestmark = pytest.mark.slow  # the demo catalog, built once per session

APP = "part-id-reader"


def _calibration_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("calibrate-")]


def test_a_slow_candidate_stops_measuring_at_the_budget(
    tmp_path: Path, demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_onnx_with(monkeypatch, "SlowBackend")
    budget = 1.0
    paths = {"state_dir": tmp_path / "state", "cache_dir": tmp_path / "cache"}
    settings = Settings(paths=paths, calibration={"tensor_budget_s": budget})
    box = box_for(settings, local_report(), make_profile())
    calibrator = measuring_loader(box)[1]
    package = Store(demo_store).load(APP)
    seen: list[threading.Thread] = []
    monkeypatch.setattr(threading.Thread, "start", _recording(threading.Thread.start, seen))

    started = time.monotonic()
    measured = calibrator.measurements(package)
    returned = time.monotonic()

    assert returned - started < budget + SLOW_S + 1.0
    slow = [m for m in measured.values() if not m.ok]
    assert slow and "did not finish within the calibration budget" in slow[0].error
    ours = [t for t in seen if t.name.startswith("calibrate-")]
    assert ours and not any(t.daemon for t in ours)  # an exiting interpreter waits for them
    # Nothing keeps measuring: the thread ends at its next call, not seconds of scoring and
    # timing later.
    for t in ours:
        t.join(SLOW_S + 1.0)
    assert not _calibration_threads(), "a calibration thread still runs after the budget"


def _recording(start, seen):  # type: ignore[no-untyped-def]
    def record(self: threading.Thread) -> None:
        seen.append(self)
        start(self)

    return record
