"""Read a Linux host's files relative to a root directory.

Every probe source goes through ``HostFS`` so that a directory tree is a complete fake
host: ``HostFS("/")`` reads this machine, ``HostFS("tests/fixtures/hosts/jetson-orin")``
reads a fixture. A missing or unreadable file is ``None``, never an exception: an absent
source is a fact about the host, not an error.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key so that renderD128 < renderD129 and nvidia2 < nvidia10."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(text))


class HostFS:
    """Paths are host paths ("/proc/cpuinfo"); they are resolved under ``root``."""

    def __init__(self, root: str | Path = "/") -> None:
        self.root = Path(root)

    @property
    def is_live(self) -> bool:
        return self.root.resolve() == Path("/")

    def path(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def read_text(self, host_path: str) -> str | None:
        try:
            return self.path(host_path).read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            return None

    def read_line(self, host_path: str) -> str | None:
        """The first line, stripped of whitespace and NUL bytes (device-tree strings end in NUL)."""
        text = self.read_text(host_path)
        if text is None:
            return None
        line = text.replace("\x00", "\n").strip().split("\n", 1)[0].strip()
        return line or None

    def exists(self, host_path: str) -> bool:
        return os.path.lexists(self.path(host_path))

    def listdir(self, host_path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(host_path)), key=natural_key)
        except OSError:
            return []

    def glob(self, pattern: str) -> list[str]:
        """Host paths matching ``pattern`` (a host-absolute glob), naturally sorted."""
        base = str(self.root).rstrip("/")
        # The root itself may hold glob characters; only the pattern part is a pattern.
        found = glob.glob(os.path.join(glob.escape(base + "/"), pattern.lstrip("/")))
        hosts = ["/" + p[len(base) :].lstrip("/") for p in found]
        return sorted(hosts, key=natural_key)
