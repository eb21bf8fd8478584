"""``SingleFlight``: at most one run per key at a time; asking while one is queued or
running joins it.

The change path uses it for reloads (runtime/service/changes.py): 500 reload commands
arriving while one reload waits for the change lock, or runs, get that reload's answer
instead of making 500 swaps one after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """Create and use it on one event loop. ``joined`` counts the calls that joined a run
    already under way instead of starting one."""

    def __init__(self) -> None:
        self._runs: dict[K, asyncio.Future[T]] = {}
        self.joined = 0

    async def run(self, key: K, start: Callable[[], Awaitable[T]]) -> T:
        """``await start()`` unless a run for ``key`` is queued or running: then its result
        (or its exception). A caller that is cancelled leaves the run going for the others."""
        run = self._runs.get(key)
        if run is None:
            run = asyncio.ensure_future(start())
            self._runs[key] = run
            run.add_done_callback(lambda done: self._finished(key, done))
        else:
            self.joined += 1
        return await asyncio.shield(run)

    def _finished(self, key: K, done: asyncio.Future[T]) -> None:
        if self._runs.get(key) is done:
            del self._runs[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone; no "never retrieved"
