"""A simulated box's daemon as a real process, for the fleet tests that run `headframe
serve` with [fleet]: its settings file with an API port, the process (stopped with
SIGTERM however the test ends), a wait that shows the daemon's log if it exits, and a
sync cut off at a chosen stage (a power cut)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fleet_repo import write_box_config
from tests.support.mosquitto import free_port
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


def served_box_config(
    tmp_path: Path, *, url: str, trusted_root: Path, sections: str = "", **fleet: object
) -> tuple[Path, str]:
    """The box's settings (state under tmp_path/box) with the API on a free port and
    ``sections`` (TOML) before [fleet]; returns the file and the API's base URL."""
    cfg = write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=url, trusted_root=trusted_root, **fleet
    )
    port = free_port()
    cfg.write_text(cfg.read_text().replace("[fleet]", f"{sections}[api]\nport = {port}\n[fleet]"))
    return cfg, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def running_daemon(cfg: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    """`headframe serve --config cfg`, stderr into ``log``; SIGTERM on the way out and
    exit code 0 asserted when the body itself succeeded."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--config", str(cfg)],
            cwd=REPO, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=err, text=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert rc == 0, f"the daemon exited {rc}:\n{log.read_text()[-3000:]}"


def fleet_app(url: str, app: str) -> dict[str, object]:
    """The daemon's fleet report for ``app`` (its /status "fleet" section)."""
    return dict(httpx.get(f"{url}/status", timeout=10).json()["fleet"]["apps"][app])


def wait_for(
    pred: Callable[[], object], what: str, proc: subprocess.Popen[str], log: Path,
    timeout: float = 180,
) -> None:  # fmt: skip
    """Until ``pred()`` is true (HTTP errors and missing keys count as not yet); fails
    with the daemon's log if it exits, or after ``timeout`` seconds."""

    def check() -> object:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise AssertionError(f"the daemon exited ({proc.returncode}):\n{tail}")
        try:
            return pred()
        except (httpx.HTTPError, KeyError, ValueError):
            return False

    wait_until(check, what, timeout, interval=0.2)


def sync_until_paused(cfg: Path, stage: str, marker: Path) -> None:
    """`headframe fleet sync --once` run until it pauses at ``stage`` (the fleet's test
    hook), then SIGKILLed: a power cut at that stage."""
    env = {**os.environ, "HF_FLEET_TEST_PAUSE_AT": stage, "HF_FLEET_TEST_PAUSE_FILE": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "fleet", "sync", "--once", "--config", str(cfg)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"sync exited ({proc.returncode}) before pausing at {stage}:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"sync never reached {stage}")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up code runs: like pulling the plug
        proc.wait()
