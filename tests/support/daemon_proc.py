"""`headframe serve --config FILE` as a real process, for the tests that run the daemon as
an operator does: write its settings file, start it, wait until it is ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def write_config(directory: Path, store: Path, port: int, extra: str = "") -> Path:
    """A settings file with everything under ``directory``, the repo's device profiles,
    no demo build, the API on ``port``, and ``extra`` TOML appended."""
    config = directory / "headframe.toml"
    config.write_text(
        f'demo = false\n[paths]\nstore_dir = "{store}"\nstate_dir = "{directory / "state"}"\n'
        f'cache_dir = "{directory / "cache"}"\nprofiles_dir = "{REPO / "device_profiles"}"\n'
        f"[api]\nport = {port}\n{extra}"
    )
    return config


def start(config: Path) -> subprocess.Popen[str]:
    """The daemon, its stderr kept for the failure message (no systemd notify socket)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--config", str(config)],
        env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until /v2/health/ready answers 200; fails with the daemon's stderr if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"headframe serve exited: {stderr[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"not ready within {timeout} s"
        time.sleep(0.2)


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM, as systemd stops the service; SIGKILL if it has not exited by ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
