"""A short memory of answered QoS 1 requests, so that a redelivery (DUP set, after our
acknowledgement was lost in a reconnect) is answered again with the same bytes instead of
being computed twice. Bounded by age and by count."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")
TTL_S = 120.0
MAX_ENTRIES = 4096


class RedeliveryCache(Generic[T]):
    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, tuple[float, T]] = OrderedDict()

    def remember(self, key: bytes | None, item: T) -> None:
        if key is None:
            return
        now = time.monotonic()
        self._items[key] = (now, item)
        self._items.move_to_end(key)
        while self._items and (
            len(self._items) > self.max_entries
            or next(iter(self._items.values()))[0] < now - self.ttl_s
        ):
            self._items.popitem(last=False)

    def forget(self, key: bytes | None) -> None:
        if key is not None:
            self._items.pop(key, None)

    def get(self, key: bytes) -> T | None:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic() - self.ttl_s:
            return None
        return hit[1]
