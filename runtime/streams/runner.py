"""The stream bindings' MQTT session, and how the daemon plugs them in.

Samples are live data: a clean session (nothing queued for us while away) with QoS 0
subscriptions, on the one MQTT session class every user shares
(runtime.mqtt.connection: jittered back-off, the refusal table, log-once diagnostics,
TLS and credentials), made again on every connect, so a broker restart mid-stream only
loses what was published while it was down. Messages arrive on the event loop, which owns
the bindings; inference runs on the model's worker, never on the loop.

The daemon calls, once the applications are loaded::

    streams = attach_streams(settings, service, refuse=bridge.reply_topics.refuse)
    if streams is not None:
        context.add_section("streams", streams.status)
        context.add_metrics("streams", streams.metric_families)
        streams.start()
    ...
    await streams.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.config import MqttSettings, Settings
from runtime.mqtt.connection import MqttConnection
from runtime.streams.binding import Binding

log = logging.getLogger(__name__)

TICK_S = 0.05  # how often time windows are looked at


class StreamsRunner:
    """The bindings on ``link``'s broker ([mqtt]'s), with a client id of their own."""

    def __init__(
        self, bindings: list[Binding], *, link: MqttSettings, fast_path: bool | None = None
    ) -> None:
        self.bindings = bindings
        self._tick: asyncio.Task[None] | None = None
        self._routes: dict[str, list[Binding]] = {}
        for b in bindings:
            for f in b.settings.subscribe:
                self._routes.setdefault(f, []).append(b)
            for f in b.settings.fields:
                if f not in self._routes:  # field topics are subscribed even if unlisted
                    self._routes.setdefault(f, []).append(b)
        # Built here, not at start: a password file that cannot be read is said at once.
        self.conn = MqttConnection(
            link,
            name="streams",
            client_id=f"headframe-streams-{uuid.uuid4().hex[:8]}",
            clean_start=True,
            subscriptions=lambda: list(self._routes),
            subscribe_qos=0,
            on_message=self._dispatch,
            manual_ack=False,
            fast_path=fast_path,
        )

    @property
    def connected(self) -> bool:
        return self.conn.connected

    @property
    def connects(self) -> int:
        return self.conn.connects

    def start(self) -> None:
        """Check each binding against its model, start connecting; on the running loop."""
        for b in self.bindings:
            b.check()
        self.conn.start()
        self._tick = asyncio.get_running_loop().create_task(self._ticker(), name="streams-tick")

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            await asyncio.gather(self._tick, return_exceptions=True)
        await self.conn.stop()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.time()
            for b in self.bindings:
                b.tick(now)

    # the event loop ---------------------------------------------------------------------
    def _dispatch(self, msg: paho.MQTTMessage) -> None:
        at = time.time()
        topic, payload = msg.topic, bytes(msg.payload)
        seen: set[int] = set()
        for f, bindings in self._routes.items():
            if not paho.topic_matches_sub(f, topic):
                continue
            for b in bindings:
                if id(b) not in seen:
                    seen.add(id(b))
                    b.on_sample(topic, payload, at)

    def publish(self, topic: str, body: bytes, qos: int, retain: bool) -> None:
        """A result or alert; on the event loop (the bindings run there)."""
        self.conn.publish(topic, body, qos=qos, retain=retain, properties=None)

    def last_result(self, app: str) -> str | None:
        """The freshest result summary among the bindings of ``app`` (Sparkplug)."""
        done = [b for b in self.bindings if b.settings.app == app and b.last_result]
        return done[-1].summary() if done else None

    def status(self) -> dict[str, Any]:
        now = time.time()
        session = self.conn.status()
        return {
            "connected": session["connected"],
            "broker": session["broker"],
            "streams": {b.settings.name: b.status(now) for b in self.bindings},
            "session": session,
        }

    def metric_families(self) -> list[Metric]:
        """Prometheus families for /metrics (the daemon registers this source)."""
        events = CounterMetricFamily(
            "headframe_stream_events",
            "Stream binding events: samples, windows, results, alerts, bad samples by kind, "
            "errors.",
            labels=["stream", "kind"],
        )
        stalled = GaugeMetricFamily(
            "headframe_stream_stalled",
            "1 while a stream has had no sample accepted for stall_after_s.",
            labels=["stream"],
        )
        now = time.time()
        for b in self.bindings:
            st = b.status(now)
            for kind, n in sorted(st["counters"].items()):
                events.add_metric([b.settings.name, kind], n)
            stalled.add_metric([b.settings.name], int(st["stalled"]))
        return [events, stalled]


def attach_streams(
    settings: Settings,
    service: Any,
    *,
    refuse: Callable[[str], None] | None = None,
) -> StreamsRunner | None:
    """The runner when ``[[streams]]`` are configured (on ``[mqtt]``'s broker), else None.
    The daemon registers its ``status`` (the "streams" section of /status) and its
    ``metric_families`` (headframe_stream_* on /metrics); ``refuse``
    (the bridge's Response Topic policy) is given every result and alert topic, so no
    request can be answered onto a binding's topic."""
    if not settings.streams or settings.mqtt is None:
        return None
    runner: StreamsRunner | None = None

    def publish(topic: str, body: bytes, qos: int, retain: bool) -> None:
        assert runner is not None
        runner.publish(topic, body, qos, retain)

    async def infer(app: str, inputs: Any) -> Any:
        return await service.infer(app, inputs, protocol="stream")

    bindings = [
        Binding(s, infer=infer, slot=service.slot, publish=publish) for s in settings.streams
    ]
    runner = StreamsRunner(bindings, link=settings.mqtt)
    for s in settings.streams:
        if refuse is not None:
            refuse(s.publish)
            if s.alert is not None:
                refuse(s.alert.topic)
    log.info("streams: %s", ", ".join(f"{s.name} -> {s.app}" for s in settings.streams))
    return runner
