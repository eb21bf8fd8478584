"""``LoadShed``: the one place that says whether the box sheds new work now.

The governor (runtime/governor/) starts shedding under hard pressure when no smaller
variant is left, and stops it when the pressure is gone; the transports ask here:

- HTTP answers a new inference request for a blocked application 429 with Retry-After
  (``check``), on KServe v2 infer and the OpenAI routes; health, readiness, /status and
  /metrics are never shed, and requests already in flight finish.
- MQTT stops taking the application's requests from the broker (runtime.mqtt.bridge): the
  broker holds QoS 1 requests (Receive Maximum) until shedding stops; none is answered
  "busy".

Thread-safe: the governor's sampler thread calls ``start``/``stop``, the event loop
calls ``blocks``/``check``. Listeners are called on the thread that called ``start`` or
``stop`` (the governor's), outside the lock; one that needs the event loop marshals
itself onto it (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.errors import Shedding

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShedState:
    """Shedding as it stands: why, since when (wall clock), what a client should wait
    (``retry_after_s``), and which applications (None: every one)."""

    reason: str
    since: float
    retry_after_s: float
    apps: frozenset[str] | None = None

    def blocks(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def to_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "since": self.since,
            "retry_after_s": self.retry_after_s,
            "apps": None if self.apps is None else sorted(self.apps),
        }


ShedListener = Callable[["ShedState | None"], None]


class LoadShed:
    """Whether new work is shed, by application; a counter of the requests refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: ShedState | None = None
        self._listeners: list[ShedListener] = []
        self._refused: Counter[tuple[str, str]] = Counter()  # (app, protocol) -> requests

    @property
    def active(self) -> ShedState | None:
        """The current state, None when nothing is shed."""
        return self._state  # one reference read: atomic

    def start(self, reason: str, retry_after_s: float, apps: frozenset[str] | None = None) -> None:
        """Shed new work for ``apps`` (None: every application) until ``stop``. Calling it
        again replaces the state (another reason, other applications)."""
        if not reason:
            raise ValueError("shedding needs a reason")
        if not retry_after_s > 0:
            raise ValueError(f"retry_after_s must be above 0, not {retry_after_s!r}")
        state = ShedState(reason, time.time(), float(retry_after_s), apps)
        with self._lock:
            before = self._state
            if before is not None and (before.reason, before.retry_after_s, before.apps) == (
                reason,
                state.retry_after_s,
                apps,
            ):
                return  # the same shedding again: nothing changes, no listener call
            self._state = state
        which = "every application" if apps is None else ", ".join(sorted(apps))
        log.warning("shedding new work for %s: %s (Retry-After %ss)", which, reason,
                    math.ceil(retry_after_s))  # fmt: skip
        self._emit(state)

    def stop(self) -> None:
        """Take new work again; requests held meanwhile (MQTT) go on."""
        with self._lock:
            before, self._state = self._state, None
        if before is None:
            return
        log.warning("shedding stopped after %.1f s (%s)", time.time() - before.since, before.reason)
        self._emit(None)

    def blocks(self, app: str) -> bool:
        """Whether a new request for ``app`` is shed now."""
        state = self._state
        return state is not None and state.blocks(app)

    def check(self, app: str, protocol: str) -> None:
        """Raise ``Shedding`` (HTTP 429, Retry-After) when a new request for ``app`` is
        shed now, and count it."""
        state = self._state
        if state is None or not state.blocks(app):
            return
        with self._lock:
            self._refused[(app, protocol)] += 1
        raise Shedding(f"{app}: the box is shedding load ({state.reason}); try again later",
                       retry_after_s=state.retry_after_s)  # fmt: skip

    def add_listener(self, fn: ShedListener) -> None:
        """``fn(state)`` after every change (None: stopped), on the thread that changed it
        (the governor's): an event-loop user hands it over with ``call_soon_threadsafe``."""
        with self._lock:
            self._listeners.append(fn)

    def _emit(self, state: ShedState | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(state)
            except Exception:
                log.exception("load-shed listener %r failed", fn)

    def refused(self) -> dict[tuple[str, str], int]:
        """Requests refused so far, by (application, protocol)."""
        with self._lock:
            return dict(self._refused)

    def status(self) -> dict[str, object]:
        """For /status: the state (None when not shedding) and the refusals so far."""
        state = self._state
        return {
            "active": state.to_dict() if state is not None else None,
            "refused": {f"{a}/{p}": n for (a, p), n in sorted(self.refused().items())},
        }

    def metric_families(self) -> Iterable[Metric]:
        """``headframe_shed_requests`` (counter, by app and protocol) and
        ``headframe_shedding`` (1 while shedding) for /metrics."""
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        refused = CounterMetricFamily(
            "headframe_shed_requests",
            "Inference requests refused (HTTP 429) while the box shed load.",
            labels=["app", "protocol"],
        )
        for (app, protocol), n in sorted(self.refused().items()):
            refused.add_metric([app, protocol], n)
        return [
            refused,
            GaugeMetricFamily(
                "headframe_shedding",
                "1 while the box sheds new work, else 0.",
                value=1 if self._state is not None else 0,
            ),
        ]
