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
from runtime.fleet.wiring import build_agent
from tests.support.fleet_repo import DEMO_APP, fleet_in_process, make_version, write_box_config
from tests.support.prometheus import prometheus_text
from tests.support.static_server import StaticServer
from tests.support.wait import wait_until_async


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
        service, runner = fleet_in_process(settings)
        runner.add_listener(states.append)  # what the MQTT bridge publishes, retained
        task = asyncio.create_task(runner.run())
        await wait_until_async(
            lambda: DEMO_APP in {s.app for s in service.slots()}, "the first install", 120
        )
        assert service.slot(DEMO_APP).package.version == "1.0.0"

        publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
        runner.update_now()  # the MQTT update-now command
        await wait_until_async(
            lambda: service.slot(DEMO_APP).package.version == "2.0.0", "2.0.0 served", 120
        )
        # The slot serves v2 a moment before the agent records the stage: wait for both.
        await wait_until_async(
            lambda: runner.status()["apps"][DEMO_APP]["stage"] == "active", "stage active", 30
        )
        status = runner.status()
        assert status["apps"][DEMO_APP]["previous"] == "1.0.0"
        metrics = prometheus_text(runner.metric_families)
        assert f'headframe_fleet_stage{{app="{DEMO_APP}",stage="active"}} 1' in metrics
        assert "headframe_fleet_check_ok 1" in metrics

        r = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["rollback", DEMO_APP, "--config", str(cfg)]
        )
        assert r.exit_code == 0, r.output
        await wait_until_async(
            lambda: service.slot(DEMO_APP).package.version == "1.0.0", "1.0.0 back", 120
        )
        # The daemon's next cycle must honour the shell's bad mark, not reinstall 2.0.0.
        checked = runner.status()["last_check"]
        runner.update_now()
        await wait_until_async(lambda: runner.status()["last_check"] != checked, "a check", 120)
        assert service.slot(DEMO_APP).package.version == "1.0.0"
        assert "2.0.0" in runner.status()["apps"][DEMO_APP]["bad"]
        await runner.stop()
        await asyncio.wait_for(task, 60)
        await service.close()

    asyncio.run(main())
    assert store.active_version(DEMO_APP) == "1.0.0"
    stages = [s["apps"][DEMO_APP]["stage"] for s in states if DEMO_APP in s["apps"]]
    for stage in ("downloading", "verifying", "trial", "active"):
        assert stage in stages


@pytest.mark.slow
def test_update_over_http_under_load_with_status_page_and_metrics(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    import threading
    import time

    import httpx
    import numpy as np

    from runtime.api.app import create_app
    from runtime.api.context import ServerContext
    from tests.support.http_server import running_server

    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    publish(repo_dir, keys_dir, [demo_pkg])
    cfg = write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json", poll_interval_s=3600,
    )  # fmt: skip
    settings = load_settings(cfg)
    build_agent(settings).sync_once()  # v1 installed before the server starts
    store = Store(tmp_path / "box" / "store")

    async def build() -> tuple[Any, Any]:
        service, runner = fleet_in_process(settings, queue_size=256)
        await service.add(store.load(DEMO_APP))
        context = ServerContext()
        context.add_section("fleet", runner.status)
        context.add_metrics("fleet", runner.metric_families)
        task = asyncio.get_running_loop().create_task(runner.run())
        return create_app(service, settings=settings, context=context), (runner, service, task)

    async def close(extra: Any) -> None:
        runner, service, task = extra
        await runner.stop()
        await asyncio.wait_for(task, 60)
        await service.close()

    with np.load(demo_pkg / "golden.npz") as z:
        pixels = z["pixels"][:2].astype(np.float32)
    body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [2, 64],
                        "data": pixels.reshape(-1).tolist()}]}  # fmt: skip
    with running_server(build, close=close) as h:
        runner = h.extra[0]
        stop = threading.Event()
        codes: list[int] = []

        def client() -> None:
            with httpx.Client(base_url=h.url, timeout=30) as c:
                while not stop.is_set():
                    codes.append(c.post(f"/v2/models/{DEMO_APP}/infer", json=body).status_code)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
        runner.update_now()
        with httpx.Client(base_url=h.url, timeout=30) as c:
            deadline = time.monotonic() + 120
            while c.get("/status").json()["fleet"]["apps"][DEMO_APP]["active"] != "2.0.0":
                assert time.monotonic() < deadline, "the update never became active"
                time.sleep(0.1)
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join()
            status = c.get("/status").json()
            page = c.get("/").text
            metrics = c.get("/metrics").text
    assert codes and set(codes) == {200}, f"{len(codes)} requests, statuses {set(codes)}"
    fleet = status["fleet"]["apps"][DEMO_APP]
    assert (fleet["active"], fleet["previous"], fleet["stage"]) == ("2.0.0", "1.0.0", "active")
    assert "<h2>updates" in page and "2.0.0" in page
    assert f'headframe_fleet_stage{{app="{DEMO_APP}",stage="active"}} 1' in metrics
