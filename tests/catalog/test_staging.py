"""Staging directories left by a writer that is gone (issue 25, item 15): `models add`
removes them before it stages its own, and never one whose maker still runs, one made on
another host or in another container, or one whose name records no maker."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.catalog.staging import make_staging_dir, sweep_staging, this_process
from runtime.cli import app
from tests.support.serving_models import write_linear_package
from tests.support.staging import left_by_a_killed_writer, staging_names


def _planted(parent: Path, tag: str) -> str:
    path = parent / f".staging-{tag}-abcd1234"
    path.mkdir(parents=True)
    (path / "variant.toml").write_text("half written\n")
    return path.name


def test_models_add_sweeps_what_a_killed_writer_left(tmp_path: Path) -> None:
    store = tmp_path / "store"
    dead = left_by_a_killed_writer(store)
    mine = make_staging_dir(store).name  # this test's process: alive, still "writing"
    src = write_linear_package(tmp_path / "src").path
    result = CliRunner().invoke(app, ["models", "add", str(src), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert dead not in staging_names(store) and staging_names(store) == [mine]
    assert Store(store).applications() == ["part-id-reader"]


def test_what_the_sweep_removes_and_keeps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    here = this_process()
    gone = left_by_a_killed_writer(tmp_path, "build")
    alive = make_staging_dir(tmp_path, "build").name
    # this process's pid with another start time: the pid was reused, the writer is gone
    reused = dataclasses.replace(here, start=here.start + 7)
    reused_name = _planted(tmp_path, "build-" + reused.tag())
    # made on this machine before it last booted
    old_boot = _planted(tmp_path, dataclasses.replace(here, pid=2**22 + 1, boot="0" * 8).tag())
    # another host (or container) writing into a shared store: its pids are not ours
    elsewhere = dataclasses.replace(here, pid=2**22 + 1, machine="f" * 8)
    elsewhere_name = _planted(tmp_path, elsewhere.tag())
    legacy = _planted(tmp_path, "build-x7k2")  # an older headframe's name: no owner
    (tmp_path / ".staging-a-file").write_text("not a directory")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("a link is never followed")
    link = tmp_path / f".staging-{reused.tag()}-link0000"
    link.symlink_to(target)

    caplog.set_level(logging.INFO, logger="runtime.catalog.staging")
    removed = sweep_staging(tmp_path)
    assert sorted(p.name for p in removed) == sorted([gone, reused_name, old_boot])
    assert {alive, elsewhere_name, legacy, ".staging-a-file", link.name} <= set(
        staging_names(tmp_path)
    )
    assert (target / "keep.txt").is_file() and os.path.islink(link)
    assert legacy in caplog.text and "no owner recorded" in caplog.text
    assert sweep_staging(tmp_path / "missing") == []  # nothing there yet: nothing to do
