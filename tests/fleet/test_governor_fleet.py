"""The fleet and the governor in one daemon: their swaps never overlap (one lock), and
after a fleet update the governor starts from the new version's own choice."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import httpx
import pytest

from runtime.fleet.publish import publish
from tests.fleet.conftest import DEMO_APP, make_version
from tests.fleet.daemon_box import fleet_app, running_daemon, served_box_config, wait_for
from tests.support.pressure_host import PressureHost
from tests.support.static_server import StaticServer


def _status(url: str) -> dict[str, object]:
    return dict(httpx.get(f"{url}/status", timeout=10).json())


def _serving(url: str) -> tuple[str, str]:
    apps = _status(url)["applications"]
    app = next((a for a in apps if a["app"] == DEMO_APP), None)  # type: ignore[attr-defined]
    return (app["version"], app["variant"]) if app and "variant" in app else ("", "")


@pytest.mark.slow
def test_fleet_update_and_governor_swaps_never_overlap(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    host = PressureHost(tmp_path / "host")
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    publish(repo_dir, keys_dir, [demo_pkg])
    sections = (
        f'[[applications]]\nname = "{DEMO_APP}"\naccuracy_floor_bp = 9700\n'
        f'objective = "smallest"\n[governor]\nhost_root = "{host.root}"\nperiod_s = 0.1\n'
        "sustain_s = 1.0\nhold_s = 3.0\n"
    )
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        poll_interval_s=5, sections=sections,
    )  # fmt: skip
    # The box starts with every variant of 1.0.0 in its store (a fleet install keeps only
    # the winner of its trial, which would leave the governor no rung to step to).
    shutil.copytree(demo_store, tmp_path / "box" / "store")
    log = tmp_path / "daemon.log"
    with running_daemon(cfg, log) as proc:
        wait_for(lambda: _serving(url)[0] == "1.0.0", "v1 serving", proc, log)
        _, first = _serving(url)
        host.memory(12.0)  # soft pressure: the governor steps v1 down
        wait_for(lambda: _serving(url)[1] != first, "the governor's step down", proc, log, 60)
        host.memory(17.0)  # out of pressure, not recovered: the governor holds
        v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
        publish(repo_dir, keys_dir, [v2])
        wait_for(lambda: fleet_app(url, DEMO_APP)["active"] == "2.0.0", "v2 active", proc, log)
        wait_for(lambda: _serving(url)[0] == "2.0.0", "v2 serving", proc, log)
        time.sleep(1.0)
        governor = _status(url)["governor"]
        _, variant = _serving(url)
    assert variant == first  # the new version's own choice, not the governor's old rung
    assert governor["stepped"] == {}  # type: ignore[index]
    history = governor["swap_history"]  # type: ignore[index]
    assert {h["by"] for h in history} >= {"fleet", "governor"}, history
    spans = sorted((h["started"], h["ended"], h["by"]) for h in history)
    for (_, end, by), (start, _, next_by) in itertools.pairwise(spans):
        assert start >= end, f"{by} and {next_by} swapped at once: {spans}"
