"""runtime.box: one place decides floor, pins and objective; pins survive a restart."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from runtime.box import Box, PinStore, pins_path
from runtime.cli import app as cli
from runtime.config import Settings
from runtime.fleet.wiring import make_chooser
from tests.support import daemon_proc
from tests.support.box import box_for
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package
from tests.support.synthetic import local_report, make_package_meta, make_profile, make_variant

REPO = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(paths={"state_dir": tmp_path / "state", "cache_dir": tmp_path / "c"}, **extra)


def _box(settings: Settings) -> Box:
    return box_for(settings, local_report(), make_profile())


VARIANTS = [make_variant("small", 1000), make_variant("large", 4000)]


def test_an_operator_pin_is_persisted_and_read_back_by_a_new_box(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _box(settings).set_pin("part-id-reader", "large", "http")
    again = _box(settings)  # as after a restart
    state = again.pin_for("part-id-reader")
    assert (state.variant, state.source) == ("large", "operator")
    assert state.text.startswith("pinned (since ") and "by http" in state.text
    sel = again.select(make_package_meta(), VARIANTS)
    assert sel.chosen is not None and sel.chosen.variant.variant == "large"
    assert sel.reason.startswith("pinned (since ")  # the reason says who pinned, and when
    again.set_pin("part-id-reader", "auto", "cli")
    assert _box(settings).pin_for("part-id-reader").variant is None


def test_precedence_operator_then_settings_then_governor(tmp_path: Path) -> None:
    settings = _settings(tmp_path, applications=[{"name": "part-id-reader", "variant": "small"}])
    box = _box(settings)
    assert box.pin_for("part-id-reader").source == "settings"
    box.set_pin("part-id-reader", "large", "mqtt")
    assert box.pin_for("part-id-reader").variant == "large"
    box.override("part-id-reader", "small", "memory pressure")
    assert box.pin_for("part-id-reader").source == "operator"  # a pin wins over the governor
    box.override("part-id-reader", None)
    assert box.pin_for("part-id-reader").variant == "large"
    unpinned = _settings(tmp_path, applications=[{"name": "part-id-reader"}])
    free = _box(unpinned)
    free.set_pin("part-id-reader", None, "cli")
    free.override("part-id-reader", "small", "memory pressure")
    assert (free.pin_for("part-id-reader").source, free.pin_for("part-id-reader").variant) == (
        "governor", "small",
    )  # fmt: skip
    assert free.policy_for("part-id-reader", unpinned=True).pin is None


def test_the_fleet_chooser_follows_a_runtime_pin_and_the_site_floor(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, applications=[{"name": "part-id-reader", "accuracy_floor_bp": 9600}]
    )
    box = _box(settings)
    choose = make_chooser(lambda: box)
    variants = [
        make_variant("small", 1000, accuracy_bp=9500),
        make_variant("large", 4000, accuracy_bp=9700),
    ]
    assert choose(make_package_meta(), variants)[0] == ["large"]  # small is under the floor
    variants.append(make_variant("mid", 2000, accuracy_bp=9800))
    assert choose(make_package_meta(), variants)[0] == ["mid", "large"]  # the shortlist
    box.set_pin("part-id-reader", "large", "http")
    assert choose(make_package_meta(), variants)[0] == ["large"]  # exactly the pinned one


def test_a_corrupt_pins_file_is_set_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    pins_path(settings).parent.mkdir(parents=True)
    pins_path(settings).write_text("{not json")
    assert PinStore(pins_path(settings)).all() == {}
    assert "unreadable" in caplog.text


def test_models_use_pins_shows_since_and_auto_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    monkeypatch.setenv("HEADFRAME_PATHS__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HEADFRAME_PATHS__STORE_DIR", str(store))
    runner = CliRunner()
    nobody = ["--url", f"http://127.0.0.1:{free_port()}"]  # no daemon: the pin is written
    used = runner.invoke(cli, ["models", "use", "part-id-reader", "large", *nobody])
    assert used.exit_code == 0, used.output
    shown = runner.invoke(cli, ["models", "show", "part-id-reader"])
    assert "pinned (since " in shown.output and "large" in shown.output
    bad = runner.invoke(cli, ["models", "use", "part-id-reader", "huge", *nobody])
    assert bad.exit_code == 2 and "no variant 'huge'" in bad.output
    runner.invoke(cli, ["models", "use", "part-id-reader", "auto", *nobody])
    shown = runner.invoke(cli, ["models", "show", "part-id-reader", "--json"])
    assert json.loads(shown.stdout)["pin"] is None


@pytest.mark.slow
def test_a_pin_set_over_http_survives_a_daemon_restart(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = daemon_proc.write_config(tmp_path, store, port)
    for round_ in range(2):
        proc = daemon_proc.start(config)
        try:
            daemon_proc.wait_ready(url, proc)
            if round_ == 0:
                r = httpx.post(
                    f"{url}/admin/models/part-id-reader/select", json={"variant": "large"}
                )
                assert r.status_code == 200, r.text
            status = httpx.get(f"{url}/status").json()
            model = next(a for a in status["applications"] if a["app"] == "part-id-reader")
            assert model["variant"] == "large"
            pins = status["box"]["pins"]
            assert pins["part-id-reader"]["text"].startswith("pinned (since ")
        finally:
            proc.terminate()
            proc.wait(30)
