"""Calibration on this box (runtime.loading.calibrator) with the demo store: the measured choice,
the cache (hit on restart, miss on a changed key, --force, corrupt file), a hanging
candidate cut at the budget. Expectations come from what was measured, never from
figures written down here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.cli import app as cli
from runtime.config import Settings
from runtime.loading.calibrator import CACHE_FILE, measuring_loader
from tests.support.box import box_for
from tests.support.sleepy_backend import serve_onnx_with
from tests.support.synthetic import local_report, make_profile

pytestmark = pytest.mark.slow  # the demo catalog, built once per session

APP = "part-id-reader"


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    paths = {"state_dir": tmp_path / "state", "cache_dir": tmp_path / "cache"}
    return Settings(paths=paths, **extra)


def _calibrate(settings: Settings, demo_store: Path, profile: Any = None, **kw: Any) -> Any:
    box = box_for(settings, local_report(), profile or make_profile())
    calibrator = measuring_loader(box)[1]
    package = Store(demo_store).load(APP)
    return box, calibrator, package, calibrator.measurements(package, **kw)


def test_the_measured_choice_follows_the_measurements(tmp_path: Path, demo_store: Path) -> None:
    box, _, package, measured = _calibrate(_settings(tmp_path, objective="fastest"), demo_store)
    metas = [v.meta for v in package.variants]
    assert measured and all(m.ok for m in measured.values())
    # what loading each one cost in resident memory (psutil), a number for every candidate
    assert all(isinstance(m.rss_growth_bytes, int) for m in measured.values())
    by_rule = box.select(package.meta, metas)
    chosen = box.select(package.meta, metas, measurements=measured)
    fastest = min((m for m in measured.values()), key=lambda m: m.p50_us)
    assert chosen.chosen.variant.variant == fastest.variant
    assert chosen.chosen.backend == fastest.backend
    assert f"p50 {fastest.p50_us} us" in chosen.reason
    # Where the fastest is not the smallest, the measured choice differs from the rule.
    differs = fastest.variant != by_rule.chosen.variant.variant
    assert (chosen.chosen.variant.variant != by_rule.chosen.variant.variant) == differs


def test_a_variant_under_the_floor_here_is_rejected_with_both_numbers(
    tmp_path: Path, demo_store: Path
) -> None:
    settings = _settings(tmp_path)
    box, _, package, measured = _calibrate(settings, demo_store)
    worst = min(measured.values(), key=lambda m: m.quality_bp)
    best_q = max(m.quality_bp for m in measured.values())
    if worst.quality_bp == best_q:
        pytest.skip("every candidate scored the same here: no floor separates them")
    floor = worst.quality_bp + 1
    settings = _settings(tmp_path, applications=[{"name": APP, "accuracy_floor_bp": floor}])
    box = box_for(settings, local_report(), make_profile())
    sel = box.select(package.meta, [v.meta for v in package.variants], measurements=measured)
    rejected = {r.variant.variant: r.reason for r in sel.rejected}
    assert f"{worst.quality_bp / 100:.2f}% here" in rejected.get(worst.variant, ""), rejected


def test_the_cache_is_used_on_restart_missed_on_a_changed_key_and_forced(
    tmp_path: Path, demo_store: Path
) -> None:
    settings = _settings(tmp_path)
    _, first, _, measured = _calibrate(settings, demo_store)
    assert first.last[APP]["from_cache"] == 0
    _, again, _, cached = _calibrate(settings, demo_store)  # a restart: a new calibrator
    assert again.last[APP]["from_cache"] == len(measured)
    assert {k: m.measured_at for k, m in cached.items()} == {
        k: m.measured_at for k, m in measured.items()
    }
    batched = _settings(tmp_path, applications=[{"name": APP, "max_batch": 4}])
    _, other, _, remeasured = _calibrate(batched, demo_store)  # the batch is in the key
    assert other.last[APP]["from_cache"] == 0
    assert all(m.batch == 4 for m in remeasured.values())
    _, forced, _, _ = _calibrate(settings, demo_store, force=True)
    assert forced.last[APP]["from_cache"] == 0


def test_a_corrupt_cache_is_discarded_with_a_warning(
    tmp_path: Path, demo_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / CACHE_FILE).write_text('{"version": 1, "entries": {"k": 3}')
    measured = _calibrate(settings, demo_store)[3]
    assert "corrupt" in caplog.text and measured
    assert json.loads((tmp_path / "state" / CACHE_FILE).read_text())["version"] == 1


def test_a_hanging_candidate_is_cut_at_the_budget(
    tmp_path: Path, demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry's own table: "onnx" now names a backend whose inference hangs.
    serve_onnx_with(monkeypatch, "SleepyBackend")
    budget = 1.5
    settings = _settings(tmp_path, calibration={"tensor_budget_s": budget})
    profile = make_profile()  # onnx (the sleepy one) first, then openvino
    started = time.monotonic()
    box, calibrator, package, measured = _calibrate(settings, demo_store, profile)
    assert time.monotonic() - started < budget + 2.0
    hung = [m for m in measured.values() if not m.ok]
    assert hung and "did not finish within the calibration budget" in hung[0].error
    assert calibrator.last[APP]["not_measured"] > 0
    # The hung target is dropped; the variant still loads on the next target.
    sel = box.select(package.meta, [v.meta for v in package.variants], measurements=measured)
    assert sel.chosen is not None and sel.chosen.backend == "openvino"


def test_models_calibrate_and_select_measure_print_the_table(
    tmp_path: Path, demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADFRAME_PATHS__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HEADFRAME_PATHS__STORE_DIR", str(demo_store))
    runner = CliRunner()
    out = runner.invoke(cli, ["models", "calibrate", APP, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    chosen = doc["selection"]["chosen"]
    assert chosen["measured"]["p50_us"] is not None
    shown = runner.invoke(cli, ["models", "select", APP, "--measure"])
    assert shown.exit_code == 0, shown.output
    assert "QUALITY HERE" in shown.output and f"p50 {chosen['measured']['p50_us']} us" in (
        shown.output
    )
    again = runner.invoke(cli, ["models", "calibrate", APP, "--json"])
    assert json.loads(again.stdout)["calibration"]["from_cache"] == len(
        doc["calibration"]["measurements"]
    )


def test_a_crashing_candidate_is_recorded_failed_and_the_next_target_serves(
    tmp_path: Path, demo_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_onnx_with(monkeypatch, "CrashingBackend")
    box, _, package, measured = _calibrate(_settings(tmp_path), demo_store)
    crashed = [m for m in measured.values() if m.backend == "onnx"]
    assert crashed and all("inference failed" in (m.error or "") for m in crashed)
    assert all(not m.ok for m in crashed)
    sel = box.select(package.meta, [v.meta for v in package.variants], measurements=measured)
    assert sel.chosen is not None and sel.chosen.backend == "openvino"
    # Whichever variant wins (the timing decides), every variant whose onnx target crashed
    # is served on its next target and says why the first one went.
    crashed_variants = {m.variant for m in crashed}
    for choice in sel.ranked:
        if choice.variant.variant in crashed_variants:
            assert choice.backend == "openvino", choice
            assert "onnx/cpu: calibration failed: inference failed" in choice.reason, choice.reason
    explained = [c for c in sel.ranked if "calibration failed" in c.reason] + [
        r for r in sel.rejected if "calibration failed" in r.reason
    ]
    assert explained, "no choice or rejection says the crashed target failed calibration"
