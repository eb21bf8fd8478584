"""Idle unload: a text model unused for ``idle_unload_s`` is parked (unloaded, the
application stays ready and listed) and the service loads it again on its next request,
which waits and says so (runtime/service/inference.py ``park``; the reload note on HTTP and MQTT).

Text models only: they hold gigabytes, and a tensor model reloads in milliseconds anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger(__name__)


class Parking(Protocol):
    """What idle unload needs of the service."""

    def last_used(self, app: str) -> float | None:
        """Monotonic time of the last request (or the load), None if not served."""

    async def park(self, app: str) -> bool:
        """Unload ``app``, keeping it ready; False when it cannot now (try later)."""


class IdleUnloader:
    def __init__(self, parking: Parking, idle_s: float) -> None:
        self.parking = parking
        self.idle_s = idle_s
        # app -> its last_used when parked: a new request (and reload) changes it
        self.parked: dict[str, float] = {}

    async def tick(self, now: float, text_apps: Iterable[str], dry_run: bool) -> list[str]:
        """Park every text application idle past ``idle_s``; returns the ones parked."""
        if self.idle_s <= 0:
            return []
        done: list[str] = []
        for app in text_apps:
            used = self.parking.last_used(app)
            if used is None:
                self.parked.pop(app, None)
                continue
            if app in self.parked:
                if self.parked[app] == used:
                    continue  # still parked: nothing came since
                del self.parked[app]  # a request reloaded it: watch it again
            idle = now - used
            if idle < self.idle_s:
                continue
            if dry_run:
                log.info("dry run: would unload %s, idle %.0f s (idle_unload_s %g)",
                         app, idle, self.idle_s)  # fmt: skip
                self.parked[app] = used
                done.append(app)
                continue
            if await self.parking.park(app):
                log.info("unloaded %s, idle %.0f s (idle_unload_s %g); its next request "
                         "loads it again", app, idle, self.idle_s)  # fmt: skip
                self.parked[app] = used
                done.append(app)
        return done
