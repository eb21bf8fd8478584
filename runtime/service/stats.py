"""Serving statistics: counters, latency histograms and recent rates, per application.

Recorded on the event loop by the service (and by transports for requests that never
reached it, such as malformed JSON); read by /metrics, /status and MQTT telemetry.
A lock keeps readers on other threads (MQTT telemetry) consistent.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

# Seconds. Fine at the low end because a small model answers in well under a millisecond.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
RATE_WINDOW_S = 60
RECENT_LATENCIES = 1024


@dataclass
class Histogram:
    """Cumulative-ready bucket counts (non-cumulative here), sum and count."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    sum: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) pairs, +Inf last, as Prometheus wants them."""
        out, running = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class _AppWindow:
    """Requests per second over the last minute, and recent latencies for percentiles."""

    seconds: deque[list[int]] = field(default_factory=lambda: deque(maxlen=RATE_WINDOW_S + 1))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_LATENCIES))

    def add(self, now: float, latency: float) -> None:
        sec = int(now)
        if self.seconds and self.seconds[-1][0] == sec:
            self.seconds[-1][1] += 1
        else:
            self.seconds.append([sec, 1])
        self.latencies.append(latency)

    def rate(self, now: float) -> float:
        start = int(now) - RATE_WINDOW_S
        return sum(n for s, n in self.seconds if s > start) / RATE_WINDOW_S


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class ServiceStats:
    """Everything counted, keyed by (app, protocol[, status])."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.tokens: Counter[tuple[str, str]] = Counter()
        self._windows: dict[str, _AppWindow] = {}

    def record(self, app: str, protocol: str, status: str, latency_s: float) -> None:
        """One finished request; ``status`` is "ok" or an error code from runtime.errors."""
        with self._lock:
            self.requests[(app, protocol, status)] += 1
            hist = self.latency.get((app, protocol))
            if hist is None:
                hist = self.latency[(app, protocol)] = Histogram()
            hist.observe(latency_s)
            window = self._windows.get(app)
            if window is None:
                window = self._windows[app] = _AppWindow()
            window.add(self._clock(), latency_s)

    def record_tokens(self, app: str, protocol: str, count: int) -> None:
        with self._lock:
            self.tokens[(app, protocol)] += count

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: totals and errors, rate, p50/p95 per app."""
        now = self._clock()
        with self._lock:
            apps: dict[str, dict[str, Any]] = {}
            for (app, protocol, status), n in self.requests.items():
                a = apps.setdefault(app, {"requests": 0, "errors": 0, "by_protocol": {}})
                a["requests"] += n
                if status != "ok":
                    a["errors"] += n
                p = a["by_protocol"].setdefault(protocol, {})
                p[status] = p.get(status, 0) + n
            for (app, protocol), n in self.tokens.items():
                a = apps.setdefault(app, {"requests": 0, "errors": 0, "by_protocol": {}})
                a.setdefault("tokens", {})[protocol] = n
            for app, window in self._windows.items():
                lat = list(window.latencies)
                apps[app].update(
                    rate_per_s=round(window.rate(now), 3),
                    p50_ms=_ms(_percentile(lat, 0.5)),
                    p95_ms=_ms(_percentile(lat, 0.95)),
                )
        return apps

    def copy_counters(
        self,
    ) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], int]]:
        """(requests by (app, protocol, status), tokens by (app, protocol))."""
        with self._lock:
            return dict(self.requests), dict(self.tokens)

    def copy_histograms(self) -> dict[tuple[str, str], Histogram]:
        with self._lock:
            return {
                k: Histogram(h.buckets, list(h.counts), h.sum, h.count)
                for k, h in self.latency.items()
            }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
