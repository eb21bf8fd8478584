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


def start(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The daemon (no systemd notify socket unless ``env`` gives one), its stderr appended
    to ``daemon.log`` beside ``config``: a file, never an undrained pipe, which a chatty
    daemon would fill and then block on (a hang that looks like the daemon's own)."""
    with log_path(config).open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--config", str(config)],
            env={**{k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip


def log_path(config: Path) -> Path:
    return config.parent / "daemon.log"


def log_of(proc: subprocess.Popen[str]) -> str:
    """What the daemon has logged so far: the file ``start`` gave it, or, for a daemon a
    test started with its stderr on a pipe, the pipe once the daemon has exited."""
    if proc.stderr is not None:
        return proc.stderr.read() if proc.poll() is not None else ""
    log = log_path(Path(str(proc.args[-1])))  # `serve --config FILE`: FILE is last
    return log.read_text() if log.is_file() else ""


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until /v2/health/ready answers 200; fails with the daemon's log if it exits or is
    not ready by ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"headframe serve exited: {log_of(proc)[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"not ready within {timeout} s; its log:\n{log_of(proc)[-6000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM, as systemd stops the service; SIGKILL if it has not exited by ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
