"""The receiving end of $NOTIFY_SOCKET, as systemd holds it, read on a thread so a test
can ask afterwards when each message arrived (the gaps between WATCHDOG=1 pings)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType


class NotifySocket:
    """A bound unix datagram socket; ``messages`` holds (monotonic time, fields) pairs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(ln.split("=", 1) for ln in data.decode().splitlines() if "=" in ln)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str, timeout: float = 120) -> dict[str, str]:
        """The first message holding key=value (already received, or within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for _, fields in self.messages:
                    if fields.get(key) == value:
                        return fields
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value} within {timeout} s; got {self.messages}")

    def times_of(self, key: str, value: str, since: float = 0.0) -> list[float]:
        """When each message holding key=value arrived (time.monotonic()), from ``since``."""
        with self._lock:
            return [t for t, f in self.messages if f.get(key) == value and t >= since]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
