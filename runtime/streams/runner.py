"""The stream bindings' MQTT connection, and how the daemon plugs them in.

Samples are live data: a clean session (nothing queued for us while away), QoS 0
subscriptions, paho's network thread with its own reconnect (re-subscribing on every
connect, so a broker restart mid-stream only loses what was published while it was
down). Every message hops to the event loop, which owns the bindings; inference runs on
the model's worker, never on paho's thread.

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
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.config import Settings
from runtime.streams.binding import Binding

log = logging.getLogger(__name__)

TICK_S = 0.05  # how often time windows are looked at


class StreamsRunner:
    def __init__(
        self,
        bindings: list[Binding],
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.bindings = bindings
        self.host, self.port = host, port
        self.connected = False
        self.connects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick: asyncio.Task[None] | None = None
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"headframe-streams-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._routes: dict[str, list[Binding]] = {}
        for b in bindings:
            for f in b.settings.subscribe:
                self._routes.setdefault(f, []).append(b)
            for f in b.settings.fields:
                if f not in self._routes:  # field topics are subscribed even if unlisted
                    self._routes.setdefault(f, []).append(b)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for b in self.bindings:
            b.check()
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=True)
        self.client.loop_start()
        self._tick = self._loop.create_task(self._ticker(), name="streams-tick")

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.time()
            for b in self.bindings:
                b.tick(now)

    # paho's thread ---------------------------------------------------------------------
    def _on_connect(self, c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("streams: broker refused the connection: %s", rc)
            return
        self.connected = True
        self.connects += 1
        c.subscribe([(f, 0) for f in self._routes])

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected = False

    def _on_message(self, c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch, msg.topic, bytes(msg.payload))

    # the event loop ---------------------------------------------------------------------
    def _dispatch(self, topic: str, payload: bytes) -> None:
        at = time.time()
        seen: set[int] = set()
        for f, bindings in self._routes.items():
            if not paho.topic_matches_sub(f, topic):
                continue
            for b in bindings:
                if id(b) not in seen:
                    seen.add(id(b))
                    b.on_sample(topic, payload, at)

    def publish(self, topic: str, body: bytes, qos: int, retain: bool) -> None:
        self.client.publish(topic, body, qos=qos, retain=retain)

    def last_result(self, app: str) -> str | None:
        """The freshest result summary among the bindings of ``app`` (Sparkplug)."""
        done = [b for b in self.bindings if b.settings.app == app and b.last_result]
        return done[-1].summary() if done else None

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {
            "connected": self.connected,
            "broker": f"{self.host}:{self.port}",
            "streams": {b.settings.name: b.status(now) for b in self.bindings},
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
            "1 while a stream has had no sample for stall_after_s.",
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
    mqtt = settings.mqtt
    from runtime.mqtt.credentials import read_password, tls_context

    password = read_password(mqtt.password_file) if mqtt.password_file is not None else None
    runner: StreamsRunner | None = None

    def publish(topic: str, body: bytes, qos: int, retain: bool) -> None:
        assert runner is not None
        runner.publish(topic, body, qos, retain)

    async def infer(app: str, inputs: Any) -> Any:
        return await service.infer(app, inputs, protocol="stream")

    bindings = [
        Binding(s, infer=infer, slot=service.slot, publish=publish) for s in settings.streams
    ]
    runner = StreamsRunner(
        bindings,
        host=mqtt.host,
        port=mqtt.port,
        username=mqtt.username,
        password=password,
        tls=tls_context(mqtt),
    )
    for s in settings.streams:
        if refuse is not None:
            refuse(s.publish)
            if s.alert is not None:
                refuse(s.alert.topic)
    log.info("streams: %s", ", ".join(f"{s.name} -> {s.app}" for s in settings.streams))
    return runner
