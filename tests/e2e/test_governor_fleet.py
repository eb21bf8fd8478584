"""The fleet and the governor in one daemon: on a store that came from the fleet alone
the governor steps down to a rung the fleet kept; their swaps never overlap (one lock);
after a fleet update the governor starts from the new version's own choice."""

from __future__ import annotations

import itertools
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from runtime.fleet.publish import publish
from tests.support.fleet_box import fleet_app, running_daemon, served_box_config, wait_for
from tests.support.fleet_repo import DEMO_APP, make_version
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
    # One candidate: the rule's choice (OpenVINO fp16, fewest bytes and the highest peak
    # memory); the lighter variants on disk are only the rungs the fleet kept for the
    # governor. The store starts empty: everything on it came from the fleet.
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        poll_interval_s=5, sections=sections, candidates=1,
    )  # fmt: skip
    store = tmp_path / "box" / "store" / DEMO_APP / "1.0.0"
    log = tmp_path / "daemon.log"

    def peak(variant: str) -> int:
        toml = (store / "variants" / variant / "variant.toml").read_text()
        return int(tomllib.loads(toml)["peak_memory_bytes"])

    with running_daemon(cfg, log) as proc:
        wait_for(lambda: _serving(url)[0] == "1.0.0", "v1 serving", proc, log)
        _, first = _serving(url)
        kept = {p.name for p in (store / "variants").iterdir()}
        rungs = {v for v in kept if peak(v) < peak(first)}
        if not rungs:
            pytest.skip(f"{first} is already the lightest qualifying variant here (no OpenVINO)")
        host.memory(12.0)  # soft pressure: the governor steps v1 down
        start = time.monotonic()
        wait_for(lambda: _serving(url)[1] != first, "the governor's step down", proc, log, 60)
        took = time.monotonic() - start
        _, stepped = _serving(url)
        assert stepped in rungs  # a rung the fleet kept, the nearest below in memory
        assert stepped == max(rungs, key=peak), (stepped, {v: peak(v) for v in kept})
        last = _status(url)["governor"]["last_action"]  # type: ignore[index]
        assert (last["action"], last["variant"], last["to"]) == ("step_down", first, stepped)
        assert 0.9 <= took < 1.0 + last["swap_s"] + 10  # the sustain (1 s) + one swap (+ load)
        host.memory(17.0)  # out of pressure, not recovered: the governor holds
        v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
        publish(repo_dir, keys_dir, [v2])
        wait_for(lambda: fleet_app(url, DEMO_APP)["active"] == "2.0.0", "v2 active", proc, log)
        wait_for(lambda: _serving(url)[0] == "2.0.0", "v2 serving", proc, log)
        time.sleep(1.0)
        status = _status(url)
        governor, changes = status["governor"], status["changes"]
        _, variant = _serving(url)
    assert variant == first  # the new version's own choice, not the governor's old rung
    assert governor["stepped"] == {}  # type: ignore[index]
    history = changes["history"]  # type: ignore[index]  # the change path's, on /status
    assert {h["by"] for h in history} >= {"fleet", "governor"}, history
    spans = sorted((h["started"], h["ended"], h["by"]) for h in history)
    for (_, end, by), (start, _, next_by) in itertools.pairwise(spans):
        assert start >= end, f"{by} and {next_by} swapped at once: {spans}"
