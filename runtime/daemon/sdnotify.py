"""systemd's notify protocol, spoken directly: one datagram per message to $NOTIFY_SOCKET.

No libsystemd: the protocol is a newline-separated list of KEY=VALUE in one datagram
to a unix socket (abstract when the path starts with "@"). Without NOTIFY_SOCKET every
call is a no-op, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = ("\0" + raw[1:] if raw.startswith("@") else raw) or None
        self._watchdog_usec = self._parse_watchdog(env)
        self._sock: socket.socket | None = None

    @staticmethod
    def _parse_watchdog(env: Mapping[str, str]) -> int | None:
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if not usec:
            return None
        if pid and pid.isdigit() and int(pid) != os.getpid():
            return None  # the watchdog is meant for another process
        try:
            value = int(usec)
        except ValueError:
            log.warning("WATCHDOG_USEC=%r is not a number; no watchdog pings", usec)
            return None
        return value if value > 0 else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval_s(self) -> float | None:
        """Half of WATCHDOG_USEC, as systemd recommends; None when there is no watchdog."""
        if self._watchdog_usec is None or not self.enabled:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def send(self, **fields: str | int) -> bool:
        """notify(READY=1, STATUS="...") -> True if sent. Never raises: a lost status
        message must not take the daemon down."""
        if self.address is None:
            return False
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
            return True
        except OSError as e:
            log.warning("sd_notify to %s failed: %s", self.address.replace("\0", "@"), e)
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
