"""A real daemon on the demo store whose governor reads a fixture host tree the test
rewrites (tests.support.pressure_host): its settings, the process, and what the governor
tests ask of it."""

from __future__ import annotations

import contextlib
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.wait import wait_until

APP = "part-id-reader"
GOOD = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [3.0] * 64}]}
SUSTAIN_S, HOLD_S = 1.0, 3.0
# The demo's variants above 97%: with objective "smallest" the box picks the OpenVINO fp16
# one (fewest bytes) whose peak memory is the highest: memory pressure has rungs below it.
APP_SETTINGS = (
    f'[[applications]]\nname = "{APP}"\naccuracy_floor_bp = 9700\nobjective = "smallest"\n'
)


def governor_section(root: Path, extra: str = "") -> str:
    return (
        f'[governor]\nhost_root = "{root}"\nperiod_s = 0.1\nsustain_s = {SUSTAIN_S}\n'
        f"hold_s = {HOLD_S}\nbackoff_s = 1.0\n{extra}"
    )


class Daemon:
    def __init__(self, url: str, proc: subprocess.Popen[str], store: Path) -> None:
        self.url, self.proc, self.store = url, proc, store

    def status(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/status", timeout=10).json()  # type: ignore[no-any-return]

    def serving(self) -> str:
        return next(a["variant"] for a in self.status()["applications"] if a["app"] == APP)

    def peak(self, variant: str) -> int:
        path = self.store / APP / "1.0.0" / "variants" / variant / "variant.toml"
        return int(tomllib.loads(path.read_text())["peak_memory_bytes"])

    def wait(self, pred: Callable[[], bool], what: str, timeout: float = 60) -> float:
        """Seconds until ``pred()`` holds; fails if the daemon exits first."""
        start = time.monotonic()

        def check() -> bool:
            assert self.proc.poll() is None, "the daemon exited"
            return pred()

        wait_until(check, what, timeout)
        return time.monotonic() - start


@contextlib.contextmanager
def run_daemon(tmp_path: Path, store: Path, extra: str) -> Iterator[Daemon]:
    port = free_port()
    cfg = daemon_proc.write_config(tmp_path, store, port, extra)
    proc = daemon_proc.start(cfg)
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        yield Daemon(url, proc, store)
    finally:
        daemon_proc.stop(proc)
