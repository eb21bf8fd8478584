"""What an operator sees: rollback and sync wait for the daemon's lock (and say so), a
rollback clears the progress of a refused download, and a tamper reason names the file."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.cli import app as cli_app
from runtime.config import load_settings
from runtime.fleet.publish import publish
from runtime.fleet.wiring import build_agent
from tests.fleet.test_agent import _tamper_target
from tests.support.fleet_repo import (
    DEMO_APP,
    make_version,
    reshuffle_golden,
    write_box_config,
    write_package,
)
from tests.support.static_server import StaticServer


@contextmanager
def _held(lock: Path, release_after_s: float | None = None) -> Iterator[None]:
    """Hold the store's lock as the daemon's update cycle does (flock, another file
    description), optionally letting go after a while."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    timer = None
    if release_after_s is not None:
        timer = threading.Timer(release_after_s, fcntl.flock, (fd, fcntl.LOCK_UN))
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.join()
        os.close(fd)


def _two_versions(tmp_path: Path) -> tuple[Path, Store, Path]:
    state = tmp_path / "box"
    store = Store(state / "store")
    for version in ("1.0.0", "2.0.0"):
        write_package(store.root, "belt", version, {"fp32": version.encode() * 10})
    store.pointer_path("belt").write_text(json.dumps({"version": "2.0.0", "previous": "1.0.0"}))
    cfg = write_box_config(
        tmp_path / "box.toml", state=state, url=None, trusted_root=tmp_path / "root.json"
    )
    return cfg, store, build_agent(load_settings(cfg), with_backends=False).lock_path


def test_rollback_waits_for_the_daemons_lock_and_says_so(tmp_path: Path) -> None:
    cfg, store, lock = _two_versions(tmp_path)
    with _held(lock, release_after_s=1.0):
        r = CliRunner().invoke(cli_app, ["rollback", "belt", "--wait", "60", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "waiting up to 60 s" in r.output and "rolled back from 2.0.0 to 1.0.0" in r.output
    assert store.active_version("belt") == "1.0.0"


def test_rollback_gives_up_after_its_wait_with_a_message(tmp_path: Path) -> None:
    cfg, store, lock = _two_versions(tmp_path)
    with _held(lock):
        r = CliRunner().invoke(cli_app, ["rollback", "belt", "--wait", "0.5", "--config", str(cfg)])
    assert r.exit_code == 2
    assert "held the lock for 0.5 s" in r.output and "--wait" in r.output, r.output
    assert store.active_version("belt") == "2.0.0"  # nothing changed


def test_fleet_sync_waits_for_the_lock_too(tmp_path: Path) -> None:
    cfg, _, lock = _two_versions(tmp_path)
    with _held(lock):
        r = CliRunner().invoke(cli_app, ["fleet", "sync", "--once", "--wait", "0.3",
                                         "--config", str(cfg)])  # fmt: skip
    assert r.exit_code == 2 and "waiting up to 0.3 s" in r.output and "held the lock" in r.output


@pytest.mark.slow
def test_a_tampered_file_is_named_and_a_rollback_clears_its_progress(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    cfg = write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json",
    )  # fmt: skip
    settings = load_settings(cfg)
    publish(repo_dir, keys_dir, [demo_pkg])
    assert build_agent(settings).sync_once().current
    publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
    assert build_agent(settings).sync_once().current
    v3 = make_version(demo_pkg, tmp_path / "pkgs", "3.0.0")
    reshuffle_golden(v3)  # a new file to fetch, then spoiled on the server
    publish(repo_dir, keys_dir, [v3])
    _tamper_target(repo_dir, "3.0.0")
    agent = build_agent(settings)
    assert agent.sync_once().outcomes == {DEMO_APP: "failed"}
    st = agent.status()["apps"][DEMO_APP]
    assert st["stage"] == "failed" and "tampered" in st["reason"]
    assert f"{DEMO_APP}/3.0.0/golden.npz" in st["reason"]  # which file, not just "a file"
    assert st["bytes_total"] > 0

    r = CliRunner().invoke(cli_app, ["rollback", DEMO_APP, "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli_app, ["fleet", "status", "--json", "--config", str(cfg)])
    st = json.loads(r.stdout)["apps"][DEMO_APP]
    assert (st["stage"], st["active"]) == ("rolled_back", "1.0.0")
    assert (st["bytes_done"], st["bytes_total"], st["pending"]) == (0, 0, None)
