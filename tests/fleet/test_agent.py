"""The box side end to end: a real TUF repository on a loopback HTTP server, the real
selection, backends, trial and inference service."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.catalog import ModelPackage, Store
from runtime.cli import app as cli_app
from runtime.config import Settings, load_settings
from runtime.fleet.agent import FleetAgent
from runtime.fleet.publish import RepoWriter, publish
from runtime.fleet.wiring import box_chooser_and_loader, build_agent
from tests.support.fleet_repo import (
    DEMO_APP,
    fleet_in_process,
    make_version,
    reshuffle_golden,
    write_box_config,
)
from tests.support.static_server import Faults, StaticServer


@dataclass
class Box:
    settings: Settings
    config: Path
    store: Store
    state: Path

    def agent(self, **kw: Any) -> FleetAgent:
        return build_agent(self.settings, **kw)

    def active(self) -> str | None:
        return self.store.active_version(DEMO_APP)

    def status(self) -> dict[str, Any]:
        return self.agent(with_backends=False).status()["apps"][DEMO_APP]


@pytest.fixture
def demo_pkg(demo_store: Path) -> Path:
    return demo_store / DEMO_APP / "1.0.0"


@pytest.fixture
def box(tmp_path: Path, repo_dir: Path, server: StaticServer) -> Box:
    state = tmp_path / "box"
    cfg = write_box_config(
        tmp_path / "box.toml",
        state=state,
        url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json",
    )
    settings = load_settings(cfg)
    return Box(settings, cfg, Store(state / "store"), state)


def _golden(package: ModelPackage) -> dict[str, np.ndarray]:
    with np.load(package.path / "golden.npz") as z:
        return {"pixels": z["pixels"][:4].astype(np.float32)}


@pytest.mark.slow
def test_publish_sync_serve_then_update_under_load(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, box: Box, demo_pkg: Path
) -> None:
    publish(repo_dir, keys_dir, [demo_pkg])
    report = box.agent().sync_once()
    assert report.current and report.outcomes == {DEMO_APP: "updated"}
    assert box.active() == "1.0.0"
    installed = box.store.load(DEMO_APP)
    # Kept: the measured winner (and the lighter rungs that qualified, for the governor).
    kept = {v.id for v in installed.variants}
    # Downloaded: the shortlist the box's chooser names; the trial measured them.
    chooser = box_chooser_and_loader(box.settings)[0]
    published = Store(demo_pkg.parent.parent).load(DEMO_APP)
    shortlist = set(chooser(published.meta, [v.meta for v in published.variants])[0])
    assert _variant_dirs_fetched(server, "1.0.0") == shortlist
    assert box.status()["variant"] in kept <= shortlist
    assert box.status()["stage"] == "active"

    v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
    publish(repo_dir, keys_dir, [v2])
    server.log.clear()

    async def main() -> tuple[int, list[str]]:
        service, runner = fleet_in_process(box.settings, queue_size=256, workers=2)
        agent = runner.agent  # activations go through the change path, as in the daemon
        await service.add(box.store.load(DEMO_APP))
        stop = asyncio.Event()
        versions: list[str] = []

        async def client() -> int:
            n = 0
            while not stop.is_set():
                answer = await service.infer(DEMO_APP, _golden(installed))  # a failure raises
                versions.append(answer.version)  # who answered
                n += 1
                await asyncio.sleep(0.002)  # a steady stream, not a CPU hog on a small box
            return n

        clients = [asyncio.create_task(client()) for _ in range(4)]
        report = await asyncio.to_thread(agent.sync_once)
        assert report.outcomes == {DEMO_APP: "updated"}
        await asyncio.sleep(0.1)
        stop.set()
        total = sum(await asyncio.gather(*clients))
        assert service.slot(DEMO_APP).package.version == "2.0.0"
        await service.close()
        return total, versions

    total, versions = asyncio.run(main())
    assert total > 10 and versions[0] == "1.0.0" and versions[-1] == "2.0.0"
    # Unchanged files are already in the content-addressed store: only new bytes travel,
    # and never another variant's.
    assert _variant_dirs_fetched(server, "2.0.0") <= shortlist
    assert any(h.path.endswith(".package.toml") for h in server.log)
    st = box.status()
    assert (st["active"], st["previous"], st["stage"]) == ("2.0.0", "1.0.0", "active")


def _variant_dirs_fetched(server: StaticServer, version: str) -> set[str]:
    prefix = f"/targets/{DEMO_APP}/{version}/"
    rests = [h.path[len(prefix) :] for h in server.log if h.path.startswith(prefix)]
    return {r.split("/")[0] for r in rests if "/" in r}


@pytest.mark.slow
def test_v3_below_the_floor_is_rejected_then_rollback_to_v1(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, box: Box, demo_pkg: Path
) -> None:
    v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
    publish(repo_dir, keys_dir, [demo_pkg])
    cli = CliRunner()
    r = cli.invoke(cli_app, ["fleet", "sync", "--once", "--config", str(box.config)])
    assert r.exit_code == 0, r.output  # 0: the box is current
    assert f"{DEMO_APP}: updated" in r.output
    publish(repo_dir, keys_dir, [v2])
    box.agent().sync_once()
    assert box.active() == "2.0.0"

    v3 = make_version(demo_pkg, tmp_path / "pkgs", "3.0.0", spoil=True)
    publish(repo_dir, keys_dir, [v3])
    r = cli.invoke(cli_app, ["fleet", "sync", "--once", "--config", str(box.config)])
    assert r.exit_code == 1 and "below the floor" in r.output, r.output
    r = cli.invoke(cli_app, ["fleet", "status", "--config", str(box.config)])
    assert r.exit_code == 0 and "failed" in r.output and "2.0.0" in r.output
    st = box.status()
    assert box.active() == "2.0.0" and st["stage"] == "failed"
    assert "below the floor" in st["reason"] and "3.0.0" in st["bad"]
    assert "3.0.0" not in box.store.versions(DEMO_APP)  # nothing half-installed stays
    # Never retried automatically: the next cycle says v2 is current.
    assert box.agent().sync_once().outcomes == {DEMO_APP: "current"}

    r = CliRunner().invoke(cli_app, ["rollback", DEMO_APP, "--config", str(box.config)])
    assert r.exit_code == 0, r.output
    assert box.active() == "1.0.0"
    st = box.status()
    assert st["stage"] == "rolled_back" and "2.0.0" in st["bad"]
    assert box.store.load(DEMO_APP).version == "1.0.0"
    # The box stays on v1: v2 was rolled back by the operator, v3 failed.
    assert box.agent().sync_once().outcomes == {DEMO_APP: "current"}
    assert box.active() == "1.0.0"


def _tamper_target(repo: Path, version: str) -> None:
    root = repo / "targets" / DEMO_APP / version
    for f in [*root.rglob("*.onnx"), *root.rglob("*.golden.npz")]:
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["tampered", "expired", "replayed", "unknown-key"])
def test_attacks_are_rejected_and_the_old_model_keeps_serving(
    attack: str, tmp_path: Path, keys_dir: Path, repo_dir: Path, box: Box, demo_pkg: Path
) -> None:
    from datetime import timedelta

    publish(repo_dir, keys_dir, [demo_pkg])
    assert box.agent().sync_once().current
    old_timestamp = (repo_dir / "metadata" / "timestamp.json").read_bytes()
    v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
    reshuffle_golden(v2)  # new bytes the box must fetch (unchanged ones it already holds)
    if attack == "replayed":
        publish(repo_dir, keys_dir, [])  # the box sees a newer timestamp...
        assert box.agent().sync_once().current
        (repo_dir / "metadata" / "timestamp.json").write_bytes(old_timestamp)  # ...then an old one
        want = "rollback"
    else:
        publish(repo_dir, keys_dir, [v2])
        if attack == "tampered":
            _tamper_target(repo_dir, "2.0.0")
            want = "tampered"
        elif attack == "expired":
            RepoWriter(repo_dir, keys_dir).resign_timestamp(timedelta(seconds=-1))
            want = "expired"
        else:
            from tuf.api.metadata import Metadata, Timestamp
            from tuf.api.serialization.json import JSONSerializer

            from runtime.fleet.keys import init_keys, load_signer

            init_keys(tmp_path / "rogue")
            path = repo_dir / "metadata" / "timestamp.json"
            ts = Metadata[Timestamp].from_file(str(path))
            ts.signed.version += 1
            ts.sign(load_signer(tmp_path / "rogue", "timestamp"))
            path.write_bytes(ts.to_bytes(JSONSerializer()))
            want = "signature"
    report = box.agent().sync_once()
    assert not report.current
    st = box.status()
    assert box.active() == "1.0.0" and box.store.load(DEMO_APP).version == "1.0.0"
    assert want in st["reason"], st
    if attack == "tampered":  # an update that failed: the reason names the file
        assert st["stage"] == "failed" and f"{DEMO_APP}/2.0.0/golden.npz" in st["reason"], st
    else:  # refused metadata: the app is healthy, its update was refused
        assert st["stage"] == "refused" and "1.0.0 keeps serving" in st["reason"], st
    assert "2.0.0" not in box.store.versions(DEMO_APP)


@pytest.mark.slow
def test_flaky_link_update_completes(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, box: Box, demo_pkg: Path
) -> None:
    publish(repo_dir, keys_dir, [demo_pkg])
    server.faults = Faults(fail_every=2, cut_after=20_000)
    agent = box.agent()
    agent.downloader.base_s, agent.downloader.cap_s = 0.01, 0.05
    assert agent.sync_once().current
    assert box.active() == "1.0.0"
    assert any(h.status == 503 for h in server.log) and any(h.status == 206 for h in server.log)


def test_staged_rollout_decides_per_node(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, box: Box, demo_pkg: Path
) -> None:
    from runtime.fleet.releases import in_rollout

    publish(repo_dir, keys_dir, [demo_pkg], rollout=20)
    out_node = next(f"n{i}" for i in range(100) if not in_rollout(f"n{i}", DEMO_APP, 20))
    assert box.settings.fleet is not None
    box.settings.fleet.node_id = out_node
    agent = box.agent()
    assert agent.sync_once().outcomes == {DEMO_APP: "current"}
    assert box.active() is None
    in_node = next(f"n{i}" for i in range(100) if in_rollout(f"n{i}", DEMO_APP, 20))
    box.settings.fleet.node_id = in_node
    assert box.agent().sync_once().outcomes == {DEMO_APP: "updated"}


@pytest.mark.slow
def test_maintenance_window_defers_the_switch(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, box: Box, demo_pkg: Path
) -> None:
    from datetime import datetime, timedelta

    publish(repo_dir, keys_dir, [demo_pkg])
    box.agent().sync_once()
    publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
    soon = datetime.now() + timedelta(hours=2)
    assert box.settings.fleet is not None
    box.settings.fleet.maintenance_window = f"{soon:%H}:00-{soon:%H}:59"
    report = box.agent().sync_once()
    assert report.outcomes == {DEMO_APP: "deferred"} and box.active() == "1.0.0"
    assert "maintenance window" in box.status()["reason"]
    box.settings.fleet.maintenance_window = None
    assert box.agent().sync_once().outcomes == {DEMO_APP: "updated"}


@pytest.mark.slow
def test_offline_bundle_import_with_no_network(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, demo_pkg: Path
) -> None:
    publish(repo_dir, keys_dir, [demo_pkg])
    cli = CliRunner()
    bundle = tmp_path / "site.tar"
    export = ["bundle", "export", "--repo", str(repo_dir), "--keys", str(keys_dir), str(bundle)]
    assert cli.invoke(cli_app, export).exit_code == 0
    state = tmp_path / "airgap"
    cfg = write_box_config(
        tmp_path / "airgap.toml", state=state, url=None,
        trusted_root=repo_dir / "metadata" / "1.root.json",
    )  # fmt: skip
    r = cli.invoke(cli_app, ["bundle", "import", str(bundle), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert Store(state / "store").active_version(DEMO_APP) == "1.0.0"
    r = cli.invoke(cli_app, ["fleet", "status", "--json", "--config", str(cfg)])
    assert json.loads(r.stdout)["apps"][DEMO_APP]["active"] == "1.0.0"
    # A tampered bundle is refused by the same checks as the network.
    _tamper_target(repo_dir, "1.0.0")
    r = cli.invoke(cli_app, export)
    assert r.exit_code == 0, r.output
    cfg2 = write_box_config(
        tmp_path / "airgap2.toml", state=tmp_path / "airgap2", url=None,
        trusted_root=repo_dir / "metadata" / "1.root.json",
    )  # fmt: skip
    r = cli.invoke(cli_app, ["bundle", "import", str(bundle), "--config", str(cfg2)])
    assert r.exit_code == 1 and "tampered" in r.output
    assert Store(tmp_path / "airgap2" / "store").active_version(DEMO_APP) is None


@pytest.mark.slow
def test_min_version_overrides_the_rollout_and_older_releases_are_never_taken(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, box: Box, demo_pkg: Path
) -> None:
    from runtime.fleet.releases import in_rollout

    publish(repo_dir, keys_dir, [demo_pkg], rollout=20)
    assert box.settings.fleet is not None
    box.settings.fleet.node_id = next(
        f"n{i}" for i in range(100) if not in_rollout(f"n{i}", DEMO_APP, 20)
    )
    box.settings.fleet.min_versions = {DEMO_APP: "1.0.0"}
    # Outside the 20%, but the box is below the site's minimum: it takes 1.0.0 anyway.
    assert box.agent().sync_once().outcomes == {DEMO_APP: "updated"}
    assert box.active() == "1.0.0"
    # A release older than the minimum is never installed, whatever the rollout says.
    box.settings.fleet.min_versions = {DEMO_APP: "5.0.0"}
    publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
    assert box.agent().sync_once().outcomes == {DEMO_APP: "current"}
    assert box.active() == "1.0.0"
