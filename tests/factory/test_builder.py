"""A `headframe models build` stopped from outside (issue 25, item 15): SIGTERM (a service
manager) and SIGHUP (the terminal closing) clean up as Ctrl-C does; a build run under
nohup keeps running through SIGHUP; a build killed outright (SIGKILL) leaves its staging
directory, and the next build into the same place removes it, but never the directory
of a build that is still running. Real signals to real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.catalog import Store
from tests.support.factory_sources import Source
from tests.support.staging import staging_names
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow  # each runs `models build` as a process

REPO = Path(__file__).resolve().parents[2]


def _build(
    source: Source, app: str, *, store: Path, variants: str = "fp32,openvino-int8,int8-static",
    preexec: Callable[[], object] | None = None,
) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "runtime", "models", "build", str(source.model), "--app", app,
         "--version", "1.0.0", "--golden", str(source.golden), "--store", str(store),
         "--variants", variants, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        preexec_fn=preexec,
    )  # fmt: skip


def _staged(proc: subprocess.Popen[str], store: Path) -> list[str]:
    """Waits until ``proc`` has made its staging directory in ``store``."""
    return wait_until(
        lambda: staging_names(store) if store.is_dir() else [],
        "the build staged its package",
        timeout=120,
    )


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_a_stop_signal_cleans_up_like_ctrl_c(
    conv_source: Source, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGHUP used to kill the build where it stood, leaving ``.staging-build-*`` (with
    every variant made so far) in the store."""
    store = tmp_path / "store"
    proc = _build(conv_source, "m", store=store)
    _staged(proc, store)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: nothing was written" in err
    assert staging_names(store) == [] and Store(store).applications() == []


def test_a_build_under_nohup_keeps_running_through_sighup(
    conv_source: Source, tmp_path: Path
) -> None:
    """``nohup headframe models build ...``: SIGHUP is ignored before the build starts,
    and the build leaves it so (it would otherwise turn the terminal closing into an
    interruption the user asked not to have)."""
    store = tmp_path / "store"
    proc = _build(conv_source, "m", store=store, variants="fp32,int8-static",
                  preexec=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # fmt: skip
    _staged(proc, store)
    os.kill(proc.pid, signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert Store(store).applications() == ["m"] and staging_names(store) == []


def test_the_next_build_sweeps_a_killed_builds_staging_but_not_a_running_ones(
    conv_source: Source, embedding_source: Source, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    killed = _build(conv_source, "killed", store=store)
    [left] = _staged(killed, store)
    killed.kill()  # SIGKILL: no handler runs, the directory stays
    killed.communicate(timeout=60)
    assert staging_names(store) == [left]

    running = _build(conv_source, "running", store=store)
    # the next build removed the dead one's directory before staging its own
    [theirs] = wait_until(lambda: [n for n in staging_names(store) if n != left] or None,
                          "the second build staged", timeout=120)  # fmt: skip
    assert staging_names(store) == [theirs]
    running.send_signal(signal.SIGSTOP)  # alive, and not writing for the moment
    try:
        later = _build(embedding_source, "later", store=store, variants="fp32")
        _, err = later.communicate(timeout=120)
        assert later.returncode == 0, err
        # the stopped (live) build's directory is untouched
        assert staging_names(store) == [theirs]
    finally:
        running.send_signal(signal.SIGCONT)
    _, err = running.communicate(timeout=300)
    assert running.returncode == 0, err
    assert Store(store).applications() == ["later", "running"] and staging_names(store) == []
