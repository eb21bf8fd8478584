"""An empty box's first install: the pointer is written, and a version that never passed
its trial never serves (neither after a failed trial nor after a power cut mid-trial)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.catalog import Store
from runtime.config import load_settings
from runtime.errors import MetadataError
from runtime.fleet.publish import publish
from runtime.fleet.wiring import build_agent
from tests.support.fleet_box import sync_until_paused
from tests.support.fleet_repo import DEMO_APP, make_version, write_box_config
from tests.support.static_server import StaticServer


def _box(tmp_path: Path, repo_dir: Path, server: StaticServer) -> Path:
    return write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json",
    )  # fmt: skip


@pytest.mark.slow
def test_a_first_version_that_fails_its_trial_is_never_served(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    spoiled = make_version(demo_store / DEMO_APP / "1.0.0", tmp_path / "pkgs", "1.0.0", spoil=True)
    publish(repo_dir, keys_dir, [spoiled])
    cfg = _box(tmp_path, repo_dir, server)
    agent = build_agent(load_settings(cfg))
    assert agent.sync_once().outcomes == {DEMO_APP: "failed"}
    st = agent.status()["apps"][DEMO_APP]
    assert st["stage"] == "failed" and "below the floor" in st["reason"] and "1.0.0" in st["bad"]
    # What the daemon serves at its next start: nothing, rather than the rejected version.
    store = Store(tmp_path / "box" / "store")
    assert store.active_version(DEMO_APP) is None
    assert store.applications() == [] and store.versions(DEMO_APP) == []
    with pytest.raises(MetadataError):
        store.load(DEMO_APP)


@pytest.mark.slow
def test_a_power_cut_mid_trial_of_a_first_install_serves_nothing_then_the_pointer_is_written(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    publish(repo_dir, keys_dir, [demo_store / DEMO_APP / "1.0.0"])
    cfg = _box(tmp_path, repo_dir, server)
    sync_until_paused(cfg, "trial", tmp_path / "paused")
    store = Store(tmp_path / "box" / "store")
    # Staged, never trialled: on disk, but not what a restarted daemon would serve.
    assert store.versions(DEMO_APP) == ["1.0.0"]
    assert store.active_version(DEMO_APP) is None
    assert not store.pointer_path(DEMO_APP).exists()

    assert build_agent(load_settings(cfg)).sync_once().outcomes == {DEMO_APP: "updated"}
    # The first switch writes the pointer, as every switch does.
    pointer = json.loads(store.pointer_path(DEMO_APP).read_text())
    assert pointer == {"version": "1.0.0", "previous": None}
    assert store.active_version(DEMO_APP) == "1.0.0"
