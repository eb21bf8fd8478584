"""A real Mosquitto broker for tests: its own config, a free loopback port, persistence on.

Mosquitto started as root drops to the ``mosquitto`` user and then cannot write a
persistence directory owned by root: the database is silently not saved. The config
here says ``user root`` when we are root, so persistence works either way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.prereq import missing

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_mosquitto() -> str:
    if MOSQUITTO is None:
        missing("mosquitto is not installed (scripts/system-deps.sh installs it)")
    return MOSQUITTO


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    require_client_cert: bool = False


class Mosquitto:
    """One broker process. ``stop()`` sends SIGTERM (persistence saved), ``kill()`` SIGKILL."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        tls: TlsFiles | None = None,
        passwords: dict[str, str] | None = None,
        extra: str = "",
    ) -> None:
        self.binary = require_mosquitto()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data = self.workdir / "data"
        self.data.mkdir(exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.data}/",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "log_type all" if os.environ.get("HEADFRAME_TEST_BROKER_DEBUG") else "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            "set_tcp_nodelay true",  # Mosquitto leaves Nagle on by default: 40 ms stalls
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.append("user root")
        if passwords is not None:
            pwfile = self.workdir / "passwords"
            pwfile.write_text("")
            for user, password in passwords.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pwfile), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
            if tls.require_client_cert:
                lines.append("require_certificate true")
        if extra:
            lines.append(extra)
        self.config = self.workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        assert self.proc is None or self.proc.poll() is not None
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running_broker(directory: Path) -> Iterator[Mosquitto]:
    """A plain Mosquitto on a free loopback port for the ``with`` block (the per-test
    ``broker`` fixture of the MQTT, Sparkplug and streams tests)."""
    require_mosquitto()
    broker = Mosquitto(directory).start()
    try:
        yield broker
    finally:
        broker.stop()
