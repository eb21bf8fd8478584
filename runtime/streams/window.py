"""Windows over samples: ``size`` samples every ``hop`` samples (hop = size: tumbling),
or every ``window_s`` seconds the last ``size`` samples. Pure: the caller passes times."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    rows: list[list[float]]
    first_at: float  # wall-clock seconds of the first and last sample
    last_at: float
    number: int  # 1, 2, ... per binding


class Windower:
    def __init__(self, size: int, hop: int | None = None, window_s: float | None = None) -> None:
        self.size, self.window_s = size, window_s
        self.hop = hop or size
        self._rows: deque[tuple[float, list[float]]] = deque(maxlen=size)
        self._since = 0  # samples since the last window
        self._next_at: float | None = None
        self.count = 0
        self.short = 0  # time windows that ended with fewer than size samples

    def add(self, at: float, row: list[float], arrived: float | None = None) -> Window | None:
        """A sample taken at ``at`` (the sensor's time, or the arrival time); returns the
        window it completes (sample-count windows). Time windows are timed by arrival
        (``arrived``, default ``at``), the clock ``tick`` is given."""
        self._rows.append((at, row))
        self._since += 1
        if self.window_s is not None:
            if self._next_at is None:
                self._next_at = (at if arrived is None else arrived) + self.window_s
            return None
        if len(self._rows) == self.size and self._since >= self.hop:
            self._since = 0
            return self._emit()
        return None

    def tick(self, now: float) -> Window | None:
        """Time windows: the window due at ``now``, if any (called periodically)."""
        if self.window_s is None or self._next_at is None or now < self._next_at:
            return None
        self._next_at += self.window_s * max(1, int((now - self._next_at) // self.window_s) + 1)
        fresh = self._since
        self._since = 0
        if len(self._rows) < self.size or fresh == 0:
            self.short += 1
            return None
        return self._emit()

    def _emit(self) -> Window:
        self.count += 1
        rows = list(self._rows)
        return Window([r for _, r in rows], rows[0][0], rows[-1][0], self.count)
