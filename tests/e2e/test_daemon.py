"""`headframe serve` as a real process: sd_notify on a real socket, SIGHUP, SIGTERM, CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
APP = "part-id-reader"
GOOD = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [3.0] * 64}]}


@dataclass
class Notify:
    """The receiving end of NOTIFY_SOCKET, as systemd holds it."""

    path: Path
    sock: socket.socket
    messages: list[dict[str, str]] = field(default_factory=list)

    cursor: int = 0
    proc: subprocess.Popen[str] | None = None

    def wait_for(self, key: str, value: str, timeout: float = 120) -> dict[str, str]:
        """The next message (after the last one returned) that holds key=value."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self.cursor, len(self.messages)):
                if self.messages[i].get(key) == value:
                    self.cursor = i + 1
                    return self.messages[i]
            left = min(deadline - time.monotonic(), 1.0)
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"the daemon exited ({self.proc.returncode}): {err[-3000:]}")
            if deadline - time.monotonic() <= 0:
                raise AssertionError(f"no {key}={value} within {timeout}s; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            lines = data.decode().splitlines()
            self.messages.append(dict(ln.split("=", 1) for ln in lines if "=" in ln))


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield Notify(path, sock)
    sock.close()


def _config(path: Path, store: Path, extra: str = "") -> Path:
    path.write_text(
        f'demo = false\nlog_format = "json"\n[paths]\nstore_dir = "{store}"\n'
        f'state_dir = "{path.parent / "state"}"\ncache_dir = "{path.parent / "cache"}"\n'
        f'profiles_dir = "{REPO / "device_profiles"}"\n'
        f"[api]\nport = 0\n{extra}"
    )
    return path


def _start(config: Path, notify: Notify, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    notify.proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--config", str(config), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return notify.proc


def _url(message: dict[str, str]) -> str:
    found = re.search(r"https?://[0-9.]+:\d+", message["STATUS"])
    assert found, message
    return found.group(0)


def _in_flight(url: str) -> int:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r"^headframe_http_requests_in_flight (\d+)", text, re.M)
    assert found, "no in-flight gauge in /metrics"
    return int(found.group(1))


def _variant(url: str) -> str:
    doc = httpx.get(f"{url}/status").json()
    return str(next(a["variant"] for a in doc["applications"] if a["app"] == APP))


@pytest.mark.slow
def test_daemon_notifies_reloads_on_sighup_and_drains_on_sigterm(
    demo_store: Path, tmp_path: Path, notify: Notify
) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    config = _config(tmp_path / "headframe.toml", store)
    proc = _start(config, notify)
    try:
        ready = notify.wait_for("READY", "1")
        url = _url(ready)
        assert "part-id-reader 1.0.0: " in ready["STATUS"]
        notify.wait_for("WATCHDOG", "1", timeout=5)
        notify.wait_for("WATCHDOG", "1", timeout=5)  # pinged again at half WATCHDOG_USEC
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        first = _variant(url)

        # SIGHUP with a pinned variant: swapped while a client keeps firing
        failures: list[str] = []
        stop = threading.Event()

        def fire() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    r = http.post(f"/v2/models/{APP}/infer", json=GOOD)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")

        clients = [threading.Thread(target=fire) for _ in range(3)]
        for c in clients:
            c.start()
        target = "fp32" if first != "fp32" else "pruned50-fp32"
        _config(config, store, f'[[applications]]\nname = "{APP}"\nvariant = "{target}"\n')
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING", "1", timeout=30)
        notify.wait_for("READY", "1", timeout=60)
        time.sleep(0.3)
        stop.set()
        for c in clients:
            c.join()
        assert failures == []
        assert _variant(url) == target

        # `headframe models use` swaps through the admin endpoint
        use = subprocess.run(
            [sys.executable, "-m", "runtime", "models", "use", APP, "auto", "--url", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert use.returncode == 0, use.stderr
        assert f"{APP} 1.0.0: now serving" in use.stdout

        # SIGTERM while a request is in flight (its body half sent): it finishes, then exit
        body = json.dumps(GOOD).encode()

        def body_with_sigterm_midway() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            # SIGTERM only once the server is reading this request (the /metrics call
            # itself is one of the requests in flight)
            deadline = time.monotonic() + 30
            while _in_flight(url) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            notify.wait_for("STOPPING", "1", timeout=10)
            time.sleep(0.3)
            yield body[len(body) // 2 :]

        r = httpx.post(
            f"{url}/v2/models/{APP}/infer", content=body_with_sigterm_midway(), timeout=60
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["outputs"][0]["data"]) == 10
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert any("ready in" in entry["msg"] for entry in logs)
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in logs)


def test_non_loopback_bind_without_a_token_is_refused(tmp_path: Path, notify: Notify) -> None:
    config = _config(tmp_path / "headframe.toml", tmp_path / "store")
    proc = _start(config, notify, "--host", "0.0.0.0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no API token is configured" in err and "0.0.0.0" in err
