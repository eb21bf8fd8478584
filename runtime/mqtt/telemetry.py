"""Periodic telemetry on ``{prefix}/telemetry``: QoS 0 with a Message Expiry, so a
subscriber never sees stale figures and nothing is buffered for it while offline.

Carries request rates and latencies (bridge-measured, per application), the service's
figures, queue depths, buffer fill and every drop counter, and the temperatures the
kernel reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from runtime.config import MqttSettings
    from runtime.mqtt.buffer import StoreAndForward
    from runtime.mqtt.connection import MqttConnection
    from runtime.mqtt.outbox import Outbox
    from runtime.mqtt.ports import StatsSnapshot

log = logging.getLogger(__name__)

WINDOW = 1024


def bridge_stats(
    counters: Counter[str],
    conn: MqttConnection | None,
    buffer: StoreAndForward | None,
    outbox: Outbox | None,
    queue_depths: Mapping[str, int],
) -> dict[str, Any]:
    """The bridge's counters, its session (reconnects, the last failure, the recent
    back-off waits), the buffer's fill and drops, replay and queue figures."""
    out: dict[str, Any] = {"connected": bool(conn and conn.connected)}
    out.update(counters)
    if conn is not None:
        out["session"] = conn.status()
        if conn.window is not None:
            out["receive_maximum_overruns"] = conn.window.overruns
    if buffer is not None:
        s = buffer.stats
        out["buffer"] = {
            "entries": s.entries,
            "bytes": s.bytes,
            "max_bytes": s.max_bytes,
            "fill": round(s.fill, 6),
            "written": s.written,
            "acked": s.acked,
            "dropped_full": s.dropped_full,
            "dropped_age": s.dropped_age,
            "rejected": s.rejected,
            "dropped": s.dropped,
            "write_errors": s.write_errors,
        }
    if outbox is not None:
        out["inflight"] = outbox.inflight
        out["broker_rejected"] = outbox.broker_rejected
        out["telemetry_dropped"] = outbox.qos0_dropped
        out["replayed"] = outbox.replayed
    out["queue_depth"] = dict(queue_depths)
    return out


def temperatures() -> dict[str, float]:
    """Hottest reading per sensor family, in °C; empty where the kernel reports none."""
    try:
        import psutil

        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError, ImportError):
        return {}
    out: dict[str, float] = {}
    for family, readings in sensors.items():
        values = [r.current for r in readings if r.current is not None]
        if values:
            out[family] = round(max(values), 1)
    return out


class Telemetry:
    """Per-application latencies (``observe``) and the periodic document: ``stats()`` gives
    the bridge's figures, ``service`` the service's; ``run(outbox)`` publishes."""

    def __init__(
        self,
        settings: MqttSettings,
        topic: str,
        *,
        stats: Callable[[], dict[str, Any]],
        service: StatsSnapshot,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._stats = stats
        self._service = service
        self._latencies: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._last: tuple[float, dict[str, int]] = (time.monotonic(), {})

    def observe(self, app: str, seconds: float) -> None:
        self._latencies.setdefault(app, deque(maxlen=WINDOW)).append(seconds)
        self._counts[app] = self._counts.get(app, 0) + 1

    def document(self, temperatures_c: dict[str, float] | None = None) -> dict[str, Any]:
        now = time.monotonic()
        then, before = self._last
        elapsed = max(now - then, 1e-6)
        apps: dict[str, Any] = {}
        for app, lat in self._latencies.items():
            values = sorted(lat)
            n = self._counts.get(app, 0)
            apps[app] = {
                "requests": n,
                "rate_per_s": round((n - before.get(app, 0)) / elapsed, 3),
                "p50_ms": round(values[len(values) // 2] * 1000, 3) if values else None,
                "p95_ms": round(values[int(len(values) * 0.95)] * 1000, 3) if values else None,
            }
        self._last = (now, dict(self._counts))
        doc: dict[str, Any] = {
            "time": time.time(),
            "node": self._settings.node,
            "mqtt": self._stats(),
            "applications": apps,
            "temperatures_c": temperatures() if temperatures_c is None else temperatures_c,
            "service": self._service.snapshot(),
        }
        return doc

    async def run(self, outbox: Outbox) -> None:
        interval = self._settings.telemetry_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                # Reading hwmon sensors can take tens of milliseconds: not on the loop.
                self.publish(outbox, await asyncio.to_thread(temperatures))
            except Exception:  # telemetry must never take the bridge down
                log.exception("mqtt: telemetry failed")

    def publish(self, outbox: Outbox, temperatures_c: dict[str, float] | None = None) -> None:
        body = orjson.dumps(self.document(temperatures_c), option=orjson.OPT_NON_STR_KEYS)
        expiry = max(1, int(self._settings.telemetry_interval_s * 2))
        outbox.send(
            self._topic,
            body,
            qos=0,
            properties={"message_expiry": expiry, "content_type": "application/json"},
        )


_COUNTERS = (
    "received", "replies", "replies_dropped", "busy", "expired", "retained_ignored",
    "duplicates", "bad_requests", "commands", "internal_errors",
)  # fmt: skip


def metric_families(stats: dict[str, Any]) -> list[Metric]:
    """The bridge's figures as Prometheus families (for /metrics via the daemon)."""
    buf = stats.get("buffer") or {}
    messages = CounterMetricFamily(
        "headframe_mqtt_messages", "MQTT requests and replies by outcome.", labels=["kind"]
    )
    for kind in _COUNTERS:
        messages.add_metric([kind], stats.get(kind, 0))
    dropped = CounterMetricFamily(
        "headframe_mqtt_buffer_dropped", "Replies dropped from the buffer, by reason.",
        labels=["reason"],
    )  # fmt: skip
    for reason, key in (("full", "dropped_full"), ("age", "dropped_age"), ("rejected", "rejected")):
        dropped.add_metric([reason], buf.get(key, 0))
    depth = GaugeMetricFamily(
        "headframe_mqtt_queue_depth", "Requests waiting per application.", labels=["app"]
    )
    for app, d in sorted((stats.get("queue_depth") or {}).items()):
        depth.add_metric([app], d)
    return [
        GaugeMetricFamily(
            "headframe_mqtt_connected", "1 while connected to the broker.",
            value=int(bool(stats.get("connected"))),
        ),
        messages,
        *(
            GaugeMetricFamily(f"headframe_mqtt_{name}", help_, value=value)
            for name, help_, value in (
                ("buffer_entries", "Replies waiting in the store-and-forward buffer.",
                 buf.get("entries", 0)),
                ("buffer_bytes", "Bytes held by the store-and-forward buffer.",
                 buf.get("bytes", 0)),
                ("buffer_max_bytes", "The buffer's bound in bytes.", buf.get("max_bytes", 0)),
                ("inflight", "Replies handed to the broker and not yet acknowledged.",
                 stats.get("inflight", 0)),
            )
        ),
        dropped,
        CounterMetricFamily(
            "headframe_mqtt_buffer_write_errors",
            "Replies sent but not stored: the disk refused the write.",
            value=buf.get("write_errors", 0),
        ),
        CounterMetricFamily(
            "headframe_mqtt_broker_rejected", "Replies the broker refused (ACL, quota).",
            value=stats.get("broker_rejected", 0),
        ),
        depth,
    ]  # fmt: skip
