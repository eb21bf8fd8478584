"""Notice changes to the model store while the daemon runs, without SIGHUP.

``fingerprint(store)`` is a cheap summary of what the store would serve: the application
directories, their version directories (inode and mtime, so a ``--replace`` that renames
a new tree into place counts), each ``package.toml`` and ``variants/`` directory, the
fleet's staged marker and each ``active.json`` pointer. A few ``stat`` calls per version,
no file is read. ``StoreWatcher`` computes it every ``interval_s`` on a worker thread
(a slow disk never blocks the event loop) and awaits ``on_change`` when it differs from
the last one it acted on.

What it catches: ``headframe models add`` (one rename into the store, so a package is
never seen half-written), a version or application directory deleted, a pointer switched
by ``headframe rollback`` or the fleet. What it does not: bytes rewritten inside a model
file that keeps its name (the loader's size and sha256 check refuses such a file when the
variant is next loaded). A tree copied in by hand should be copied under a dot-name and
renamed into place, as ``models add`` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from runtime.catalog.package import FLEET_STAGED_MARKER
from runtime.catalog.store import Store

log = logging.getLogger(__name__)

StatKey = tuple[int, int, int] | None
Fingerprint = frozenset[tuple[str, str, str, StatKey]]


def _stat(path: Path) -> StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def fingerprint(store: Store) -> Fingerprint:
    """What the store holds now, as far as serving is concerned. BLOCKING (stat calls)."""
    entries: set[tuple[str, str, str, StatKey]] = set()
    for app in store.applications():
        entries.add((app, "", "active.json", _stat(store.pointer_path(app))))
        for version in store.versions(app):
            pdir = store.package_dir(app, version)
            for name in (".", "package.toml", "variants", FLEET_STAGED_MARKER):
                entries.add((app, version, name, _stat(pdir / name)))
    return frozenset(entries)


class StoreWatcher:
    """Polls ``store_of()`` (the daemon's store, which SIGHUP may replace) every
    ``interval_s`` and awaits ``on_change()`` after each change.

    ``on_change`` runs on the event loop and is awaited before the next poll, so changes
    that arrive while it works are seen by the next poll, never lost. An exception from
    it is logged and the watch goes on (the next change retries)."""

    def __init__(
        self,
        store_of: Callable[[], Store],
        on_change: Callable[[], Awaitable[None]],
        interval_s: float,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive (0 means: do not start a watcher)")
        self.store_of = store_of
        self.on_change = on_change
        self.interval_s = interval_s
        self._last: Fingerprint | None = None

    async def prime(self) -> None:
        """Take the reference fingerprint now: changes after this call are reported."""
        self._last = await asyncio.to_thread(fingerprint, self.store_of())

    async def check(self) -> bool:
        """One poll: True (after ``on_change`` returned) when the store changed."""
        current = await asyncio.to_thread(fingerprint, self.store_of())
        if self._last is None:
            self._last = current
            return False
        if current == self._last:
            return False
        self._last = current
        log.info("the model store at %s changed; reselecting", self.store_of().root)
        try:
            await self.on_change()
        except Exception:  # the daemon keeps serving what it has; the next change retries
            log.exception("acting on a store change failed")
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except OSError as e:  # the store vanished or became unreadable: say so, go on
                log.warning("cannot read the model store: %s", e)
