"""Log lines about what senders do, bounded in lines and in memory.

A sender on the broker can repeat a bad message as fast as the network allows, and can
vary every field of it. ``LimitedLog`` logs the first line of each kind, then at most
one line per kind every ``every_s`` saying how many were not logged meanwhile. The kind
is the caller's fixed vocabulary (an error code, a command switch), never a value a
sender chooses (a metric name, a topic): the memory it holds is one entry per kind,
however many distinct messages arrive. The bridge's refused requests
(runtime.mqtt.replies.RejectLog) and the Sparkplug node's commands and STATE use it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

EVERY_S = 10.0  # at most one line per kind this often


class LimitedLog:
    def __init__(
        self, logger: logging.Logger, level: int = logging.WARNING, every_s: float = EVERY_S
    ) -> None:
        self.logger, self.level, self.every_s = logger, level, every_s
        self._last: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()

    def note(self, kind: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless a line of ``kind`` went out less than ``every_s``
        ago (then it is only counted); True when it was logged."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self._quiet[kind] += 1
            return False
        self._last[kind] = now
        more = self._quiet.pop(kind, 0)
        if more:
            message += f" ({more} more {kind} not logged in the last {self.every_s:.0f} s)"
        self.logger.log(self.level, message, *args)
        return True

    def kinds(self) -> int:
        """How many kinds it remembers (its whole memory is proportional to this)."""
        return len(self._last)
