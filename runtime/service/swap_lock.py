"""``SwapLock``: one hot swap at a time between the fleet's updates and the governor.

Both take ``async with lock.hold(app, by)`` around their ``service.swap``; listeners hear
who took it before the swap starts (the governor drops its override of an application
the fleet is about to update, so the new version starts from its own choice). The last
swaps are kept, with start and end, for /status.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

Listener = Callable[[str, str], None]  # (by, app)


class SwapLock:
    def __init__(self, keep: int = 32) -> None:
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self.holder: tuple[str, str] | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=keep)

    def add_listener(self, fn: Listener) -> None:
        """``fn(by, app)`` on the loop once ``by`` holds the lock, before its swap."""
        self._listeners.append(fn)

    @asynccontextmanager
    async def hold(self, app: str, by: str) -> AsyncIterator[None]:
        async with self._lock:
            self.holder = (by, app)
            for fn in list(self._listeners):
                fn(by, app)
            start = time.time()
            try:
                yield
            finally:
                self.holder = None
                self.history.append({"by": by, "app": app, "started": start, "ended": time.time()})
