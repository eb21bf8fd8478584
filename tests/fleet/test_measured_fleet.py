"""The fleet downloads exactly the variant the daemon then serves: under an operator pin
and a site floor only the pinned one; without a pin the shortlist, measured on this box
by the trial, and only the winner is kept. Through the real agent and daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.box import PinStore
from runtime.catalog import Store
from runtime.fleet.publish import publish
from tests.fleet.conftest import DEMO_APP, make_version, reshuffle_golden
from tests.fleet.daemon_box import running_daemon, served_box_config, wait_for
from tests.support.static_server import StaticServer


@pytest.mark.slow
def test_the_fleet_downloads_exactly_what_the_daemon_serves(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    metas = {v.id: v.meta for v in Store(demo_store).load(DEMO_APP).variants}
    # A site floor that turns the least accurate variants down (from what the build measured).
    accuracies = sorted({m.accuracy_bp or 0 for m in metas.values()})
    if len(accuracies) < 2:
        pytest.skip("every demo variant measured the same accuracy on this machine")
    floor = accuracies[0] + 1
    qualifying = sorted((m for m in metas.values() if (m.accuracy_bp or 0) >= floor),
                        key=lambda m: m.bytes)  # fmt: skip
    pinned = qualifying[-1].variant  # the largest that qualifies: never the rule's choice
    publish(repo_dir, keys_dir, [demo_pkg])
    state = tmp_path / "box"
    site = f'[[applications]]\nname = "{DEMO_APP}"\naccuracy_floor_bp = {floor}\n'
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        sections=site, poll_interval_s=5,
    )  # fmt: skip
    PinStore(state / "pins.json").set(DEMO_APP, pinned, "cli")  # `models use`, offline
    log = tmp_path / "daemon.log"

    def served() -> dict[str, Any]:
        apps = httpx.get(f"{url}/status", timeout=10).json()["applications"]
        return next((a for a in apps if a["app"] == DEMO_APP), {})

    def on_disk(version: str) -> set[str]:
        return {p.name for p in (state / "store" / DEMO_APP / version / "variants").iterdir()}

    with running_daemon(cfg, log) as proc:
        wait_for(lambda: served().get("version") == "1.0.0", "v1 serving", proc, log)
        assert served()["variant"] == pinned
        assert on_disk("1.0.0") == {pinned}  # only the pinned variant came down
        # The pin cleared: the next release is measured here, the winner kept alone.
        r = httpx.post(f"{url}/admin/models/{DEMO_APP}/select", json={"variant": "auto"})
        assert r.status_code == 200, r.text
        v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
        reshuffle_golden(v2)
        publish(repo_dir, keys_dir, [v2])
        wait_for(lambda: served().get("version") == "2.0.0", "v2 serving", proc, log, timeout=240)
        winner = served()["variant"]
        assert on_disk("2.0.0") == {winner}
        assert (metas[winner].accuracy_bp or 0) >= floor
        fleet = httpx.get(f"{url}/status").json()["fleet"]["apps"][DEMO_APP]
        assert fleet["variant"] == winner
