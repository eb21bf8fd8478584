"""`headframe serve` with [fleet]: the daemon installs from an empty store, takes a new
release under HTTP load without a failed request, and reports it on /status, the status
page and /metrics."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from runtime.fleet.publish import publish
from tests.support.fleet_box import fleet_app, running_daemon, served_box_config, wait_for
from tests.support.fleet_repo import DEMO_APP, make_version, reshuffle_golden
from tests.support.static_server import StaticServer


@pytest.mark.slow
def test_daemon_installs_and_updates_under_load(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    publish(repo_dir, keys_dir, [demo_pkg])
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        poll_interval_s=5,
    )  # fmt: skip
    log = tmp_path / "daemon.log"
    with running_daemon(cfg, log) as proc:
        wait_for(lambda: fleet_app(url, DEMO_APP)["active"] == "1.0.0", "v1 installed", proc, log)
        with np.load(demo_pkg / "golden.npz") as z:
            pixels = z["pixels"][:1].astype(np.float32)
        body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                            "data": pixels.reshape(-1).tolist()}]}  # fmt: skip
        wait_for(
            lambda: httpx.post(f"{url}/v2/models/{DEMO_APP}/infer", json=body).status_code == 200,
            "v1 serving", proc, log,
        )  # fmt: skip
        stop = threading.Event()
        codes: list[int] = []

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    codes.append(c.post(f"/v2/models/{DEMO_APP}/infer", json=body).status_code)

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
        reshuffle_golden(v2)
        publish(repo_dir, keys_dir, [v2])
        wait_for(lambda: fleet_app(url, DEMO_APP)["active"] == "2.0.0", "v2 active", proc, log)
        wait_for(lambda: fleet_app(url, DEMO_APP)["stage"] == "active", "v2 reported", proc, log)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        page = httpx.get(f"{url}/").text
        metrics = httpx.get(f"{url}/metrics").text
        served = httpx.get(f"{url}/status").json()["applications"]
    assert codes and set(codes) == {200}, f"{len(codes)} requests: {set(codes)}"
    assert next(a for a in served if a["app"] == DEMO_APP)["version"] == "2.0.0"
    assert "<h2>updates" in page
    assert f'headframe_fleet_stage{{app="{DEMO_APP}",stage="active"}} 1' in metrics


@pytest.mark.slow
def test_daemon_never_serves_a_first_version_that_failed_its_trial(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    spoiled = make_version(demo_store / DEMO_APP / "1.0.0", tmp_path / "pkgs", "1.0.0", spoil=True)
    publish(repo_dir, keys_dir, [spoiled])
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        poll_interval_s=3600,
    )  # fmt: skip
    log = tmp_path / "daemon.log"
    with running_daemon(cfg, log) as proc:
        rejected = "the trial to reject 1.0.0"
        wait_for(lambda: fleet_app(url, DEMO_APP)["stage"] == "failed", rejected, proc, log)
        assert "below the floor" in str(fleet_app(url, DEMO_APP)["reason"])
        # SIGHUP re-reads the store (what a restart does too): still nothing to serve.
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded settings" in log.read_text(), "the reload", proc, log)
        ready = httpx.get(f"{url}/v2/models/{DEMO_APP}/ready", timeout=10).status_code
        served = httpx.get(f"{url}/status", timeout=10).json()["applications"]
    assert ready != 200
    assert not [a for a in served if a["app"] == DEMO_APP], served
    assert _store_active_version(tmp_path) is None


def _store_active_version(tmp_path: Path) -> str | None:
    from runtime.catalog import Store

    return Store(tmp_path / "box" / "store").active_version(DEMO_APP)
