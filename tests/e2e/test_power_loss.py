"""SIGKILL the sync at each stage (download, verify, trial, switch): the store stays
consistent, the box serves a good version, and the next sync finishes the job (resuming
the download rather than starting it again)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import Store, load_package
from runtime.config import load_settings
from runtime.fleet.publish import publish
from runtime.fleet.wiring import build_agent
from tests.support.fleet_box import sync_until_paused
from tests.support.fleet_repo import DEMO_APP, make_version, reshuffle_golden, write_box_config
from tests.support.static_server import StaticServer


def _assert_consistent_and_serving(store: Store, cfg: Path) -> str:
    for version in store.versions(DEMO_APP):
        load_package(store.package_dir(DEMO_APP, version))  # every version dir is whole
    active = store.active_version(DEMO_APP)
    assert active is not None
    agent = build_agent(load_settings(cfg))
    assert agent.loader is not None
    package = store.load(DEMO_APP)
    loaded = agent.loader(package, None)
    with np.load(package.path / "golden.npz") as z:
        out = loaded.backend.infer({"pixels": z["pixels"][:8].astype(np.float32)})
        assert (np.argmax(out["probabilities"], axis=1) == z["labels"][:8]).mean() >= 0.75
    loaded.backend.unload()
    return active


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["download", "verify", "trial", "switch"])
def test_sigkill_at_each_stage_leaves_a_good_box(
    stage: str,
    tmp_path: Path,
    keys_dir: Path,
    repo_dir: Path,
    server: StaticServer,
    demo_store: Path,
) -> None:
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    publish(repo_dir, keys_dir, [demo_pkg])
    state = tmp_path / "box"
    cfg = write_box_config(
        tmp_path / "box.toml", state=state, url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json",
        bandwidth_limit_bytes_s=65536,  # slow enough to be caught mid-file
    )  # fmt: skip
    assert build_agent(load_settings(cfg)).sync_once().current
    store = Store(state / "store")
    assert store.active_version(DEMO_APP) == "1.0.0"

    v2 = make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")
    reshuffle_golden(v2)
    publish(repo_dir, keys_dir, [v2])
    sync_until_paused(cfg, stage, tmp_path / "paused")

    assert _assert_consistent_and_serving(store, cfg) == "1.0.0"
    server.log.clear()
    report = build_agent(load_settings(cfg)).sync_once()
    assert report.current, report
    assert store.active_version(DEMO_APP) == "2.0.0"
    assert _assert_consistent_and_serving(store, cfg) == "2.0.0"
    golden = [h for h in server.log if h.path.endswith(".golden.npz")]
    if stage == "download":
        # The partial file survived the kill: the next sync asked only for the rest.
        assert golden and golden[0].range and golden[0].range != "bytes=0-"
    else:
        assert not golden  # already downloaded and verified before the kill
