"""The agent inside a serving process: first install, update-now, a shell rollback picked
up by the running service, and what /status, /metrics and MQTT get to report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.cli import app as cli_app
from runtime.config import load_settings
from runtime.fleet.publish import publish
from runtime.fleet.runner import FleetRunner
from runtime.fleet.wiring import build_agent
from runtime.service import InferenceService
from tests.fleet.conftest import DEMO_APP, make_version, write_box_config
from tests.support.static_server import StaticServer


async def _until(pred: Any, timeout: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.slow
def test_runner_installs_updates_and_follows_a_shell_rollback(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    publish(repo_dir, keys_dir, [demo_pkg])
    cfg = write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json", poll_interval_s=3600,
    )  # fmt: skip
    settings = load_settings(cfg)
    store = Store(tmp_path / "box" / "store")
    states: list[dict[str, Any]] = []

    async def main() -> None:
        agent = build_agent(settings)
        service = InferenceService(agent.loader)  # type: ignore[arg-type]
        runner = FleetRunner(agent, service, reconcile_s=0.2)
        runner.add_listener(states.append)  # what the MQTT bridge publishes, retained
        task = asyncio.create_task(runner.run())
        await _until(lambda: DEMO_APP in {s.app for s in service.slots()})  # first install
        assert service.slot(DEMO_APP).package.version == "1.0.0"

        publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
        runner.update_now()  # the MQTT update-now command
        await _until(lambda: service.slot(DEMO_APP).package.version == "2.0.0")
        status = runner.status()
        assert status["apps"][DEMO_APP]["stage"] == "active"
        assert status["apps"][DEMO_APP]["previous"] == "1.0.0"
        metrics = runner.metrics_text()
        assert f'headframe_fleet_stage{{app="{DEMO_APP}",stage="active"}} 1' in metrics
        assert "headframe_fleet_check_ok 1" in metrics

        r = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["rollback", DEMO_APP, "--config", str(cfg)]
        )
        assert r.exit_code == 0, r.output
        await _until(lambda: service.slot(DEMO_APP).package.version == "1.0.0")
        runner.stop()
        await asyncio.wait_for(task, 60)
        await service.close()

    asyncio.run(main())
    assert store.active_version(DEMO_APP) == "1.0.0"
    stages = [s["apps"][DEMO_APP]["stage"] for s in states if DEMO_APP in s["apps"]]
    for stage in ("downloading", "verifying", "trial", "active"):
        assert stage in stages
