"""The MQTT bridge: requests from the broker into the inference service, replies back.

paho's socket I/O and callbacks run on the event loop (runtime.mqtt.connection), so a
request is routed, answered and acknowledged there; inference runs through ``await
service.infer`` / ``service.generate`` like any HTTP request, on the model's worker.
A QoS 1 request is acknowledged to the broker only after its reply is safe in the
store-and-forward buffer (a daemon killed mid-request gets it again from its persistent
session); the Receive Maximum keeps the rest waiting at the broker (runtime.mqtt.flow), so
only QoS 0 requests are answered "busy". An unknown application is answered ``not_found``
before anything is kept for its name.

Replies go to the request's Response Topic with its Correlation Data echoed, else to
``{prefix}/models/{app}/result``; they carry the model version and variant as user
properties. See docs/mqtt.md for every topic and guarantee.

While the box sheds load (runtime.service.load_shed) the bridge takes no new request of a blocked
application: it keeps them unacknowledged and unserved, in arrival order, so the broker
holds the rest (Receive Maximum); none is answered "busy". When shedding stops they are
served as if they had just arrived. Why not stop reading the socket, as flow control
does: paho must read the broker's PINGRESP within the keepalive or it drops the
connection, and a hold lasts as long as the pressure (runtime.mqtt.flow's hold is brief).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho

from runtime.config import MqttSettings
from runtime.errors import Busy, HeadframeError, InvalidInput
from runtime.mqtt import codec
from runtime.mqtt.buffer import StoreAndForward
from runtime.mqtt.chat import run_chat
from runtime.mqtt.commands import Commands
from runtime.mqtt.connection import MqttConnection, Will
from runtime.mqtt.embed import run_embed
from runtime.mqtt.flow import receive_maximum
from runtime.mqtt.infer import run_infer
from runtime.mqtt.jobs import Job, request_key
from runtime.mqtt.outbox import Outbox
from runtime.mqtt.ports import Changes, Limits, MqttService
from runtime.mqtt.presence import Presence
from runtime.mqtt.replies import Replies
from runtime.mqtt.reply_topics import ReplyTopics
from runtime.mqtt.telemetry import Telemetry, bridge_stats, metric_families
from runtime.mqtt.topics import Topics
from runtime.service.load_shed import LoadShed, ShedState

log = logging.getLogger(__name__)

WORKERS_PER_APP = 8  # requests of one app awaiting the service at once; the service queues
__all__ = ["Job", "MqttBridge"]


class MqttBridge:
    """Serves ``service`` over MQTT. ``changes`` (the change path) obeys the ``select`` and
    ``reload`` commands; ``info()`` gives the hardware/profile summary for the retained
    info topic; ``state_dir`` holds the buffer unless settings name a path."""

    def __init__(
        self,
        settings: MqttSettings,
        service: MqttService,
        *,
        changes: Changes,
        info: Callable[[], dict[str, Any]],
        state_dir: Path,
        fast_path: bool | None = None,
        shed: LoadShed | None = None,
    ) -> None:
        self.settings = settings
        self._shed = shed  # while it blocks an application, its requests wait (unacked)
        self._held: dict[str, list[Job]] = {}  # app -> requests held while shedding
        self.service = service
        self._fast_path = fast_path  # None: the connection checks paho itself
        self._limits = Limits.of(settings)
        self.topics = Topics.build(
            settings.prefix, site=settings.site, node=settings.node, pool_group=settings.pool_group
        )
        # Stream bindings add their publish and alert topics with reply_topics.refuse().
        self.reply_topics = ReplyTopics(settings.prefix, reply_prefix=settings.reply_prefix)
        b = settings.buffer
        self.buffer_path = b.path or Path(state_dir) / "mqtt-buffer.sqlite"
        self.counters: Counter[str] = Counter()
        self.replies = Replies(self.counters)
        self.presence = Presence(settings, self.topics, service, info)
        self.commands = Commands(
            service,
            self.replies,
            changes=changes,
            switches=settings.commands,
            limits=self._limits,
            status=self.status_doc,
            counters=self.counters,
        )
        self.telemetry = Telemetry(
            settings, self.topics.telemetry, stats=self.stats, service=service.stats
        )
        self._queues: dict[str, asyncio.Queue[Job]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.buffer: StoreAndForward | None = None
        self.conn: MqttConnection | None = None
        self.outbox: Outbox | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Open the buffer and start connecting; call on the running event loop. Returns at
        once: an absent broker is retried in the background."""
        self._loop = asyncio.get_running_loop()
        b = self.settings.buffer
        self.buffer = StoreAndForward(
            self.buffer_path,
            max_bytes=b.max_bytes,
            max_age_s=b.max_age_s,
            policy=b.policy,
            sync=b.sync,
        )
        self.conn = MqttConnection(
            self.settings,
            subscriptions=lambda: self.topics.subscriptions(
                commands=self.settings.commands_enabled
            ),
            # Built for every CONNECT, so the Will is never older than its session.
            will=lambda: Will(
                self.topics.status, self.presence.status_body("offline", "connection lost")
            ),
            on_connect=lambda present: self._on_connected(),
            on_disconnect=self._on_disconnected,
            on_message=self._on_message,
            on_publish=self._on_publish,
            receive_maximum=receive_maximum(self.settings),
            fast_path=self._fast_path,
        )
        self.outbox = Outbox(self.conn, self.buffer, replay_rate_per_s=b.replay_rate_per_s)
        self.conn.before_send = self.outbox.commit
        self.replies.bind(self.conn, self.outbox)
        self.service.add_listener(self._on_service_event)
        if self._shed is not None:
            self._shed.add_listener(self._on_shed_change)
        self._tasks = [
            self._loop.create_task(self.outbox.run(), name="mqtt-outbox"),
            self._loop.create_task(self.telemetry.run(self.outbox), name="mqtt-telemetry"),
        ]
        self.conn.start()
        log.info(
            "mqtt: bridge for %s on %s:%s (buffer %s)",
            self.topics.prefix,
            self.settings.host,
            self.settings.port,
            self.buffer_path,
        )

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Say "offline" (retained), disconnect normally, and keep unsent replies buffered."""
        if self.conn is None:
            return
        conn = self.conn
        if conn.connected:
            info = conn.publish(
                self.topics.status,
                self.presence.status_body("offline", "shutdown"),
                qos=1,
                retain=True,
                properties=None,
            )
            deadline = time.monotonic() + min(timeout_s, 2.0)
            while not info.is_published() and time.monotonic() < deadline and conn.connected:
                await asyncio.sleep(0.01)
        for task in (*self._tasks, *self._workers):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._workers, return_exceptions=True)
        await conn.stop(timeout_s)
        if self.buffer is not None:
            self.buffer.close()
        self.conn = None
        log.info("mqtt: bridge stopped")

    # --- connection events (event loop) -----------------------------------------------

    def _on_connected(self) -> None:
        assert self.outbox is not None
        self.counters["connects"] += 1
        self.outbox.on_connected()
        self._publish_presence()

    def _publish_presence(self) -> None:
        """Retained "online" status (its application list) and info, when connected."""
        if self.conn is None or not self.conn.connected:
            return
        self.conn.publish(
            self.topics.status,
            self.presence.status_body("online"),
            qos=1,
            retain=True,
            properties=None,
        )
        self.publish_info()

    def _on_disconnected(self) -> None:
        assert self.outbox is not None
        self.outbox.on_disconnected()

    def _on_publish(self, mid: int, reason: int) -> None:
        assert self.outbox is not None
        self.outbox.on_ack(mid, reason)

    def _on_service_event(self, event: str, app: str) -> None:
        # The broker often answers before the models are loaded: the retained status must
        # not keep saying "no applications" once they are.
        if event in ("loaded", "swapped", "removed"):
            self._publish_presence()

    def _on_shed_change(self, state: ShedState | None) -> None:
        # On the governor's thread: hand it to the loop, where the jobs live.
        loop = self._loop
        if loop is None or loop.is_closed() or self.conn is None:
            return
        loop.call_soon_threadsafe(self._release_held)

    def _release_held(self) -> None:
        """Requests held for applications no longer shed go to their queues, in order."""
        if self.conn is None:
            return
        for app in list(self._held):
            if self._shed is not None and self._shed.blocks(app):
                continue
            jobs = self._held.pop(app)
            queue = self._queue(app)
            for job in jobs:
                queue.put_nowait(job)
            log.info("mqtt: shedding over for %s: serving %d held requests", app, len(jobs))

    def info_doc(self) -> dict[str, Any]:
        return self.presence.info_doc()

    def status_doc(self) -> dict[str, Any]:
        """What the ``status`` command answers: the retained status, the bridge's and the
        service's figures."""
        doc: dict[str, Any] = orjson.loads(self.presence.status_body("online"))
        doc["mqtt"] = self.stats()
        doc["service"] = self.service.stats.snapshot()
        return doc

    def publish_info(self) -> None:
        """Retained info; republished whenever a variant changes."""
        if self.conn is None or not self.conn.connected:
            return
        try:
            body = orjson.dumps(self.info_doc(), option=orjson.OPT_SERIALIZE_NUMPY)
        except Exception:
            log.exception("mqtt: could not build the info document")
            return
        self.conn.publish(self.topics.info, body, qos=1, retain=True, properties=None)

    def publish_event(self, event: Mapping[str, Any]) -> bool:
        """One event on ``{prefix}/events`` (QoS 1, not retained: an event is news, not
        state). On the event loop. False, with a warning, when the broker is away: an
        event is not buffered (the state it reports is on /status and the retained status)."""
        if self.conn is None or not self.conn.connected:
            log.warning("mqtt: broker away, event not sent: %s", event.get("action", event))
            return False
        try:
            body = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)
            self.conn.publish(self.topics.events, body, qos=1, retain=False, properties=None)
        except Exception as e:  # a broker going away mid-call must never stop the caller
            log.warning("mqtt: could not publish %s: %s", self.topics.events, e)
            return False
        return True

    # --- requests (event loop) ----------------------------------------------------------

    def _on_message(self, msg: paho.MQTTMessage) -> None:
        try:
            self._route(msg)
        except Exception:  # nothing a client sends may stop the bridge
            log.exception("mqtt: unexpected error handling a message on %s", msg.topic)
            self.counters["internal_errors"] += 1
            self.replies.ack(msg)

    def _route(self, msg: paho.MQTTMessage) -> None:
        self.counters["received"] += 1
        topic = msg.topic  # paho decodes the topic on every access
        route = self.topics.parse(topic)
        if route is None:
            self.replies.ack(msg)
            return
        if msg.retain:
            # A retained request would be replayed at every (re)subscribe: never act on it.
            self.counters["retained_ignored"] += 1
            log.warning("mqtt: ignored a retained message on %s", topic)
            self.replies.ack(msg)
            return
        props = msg.properties
        raw_reply = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        expiry = getattr(props, "MessageExpiryInterval", None) if props is not None else None
        content_type = getattr(props, "ContentType", None) if props is not None else None
        now = time.monotonic()
        default_reply = (
            self.topics.result(route.name)
            if route.kind != "cmd"
            else self.topics.cmd(route.name) + "/result"
        )
        job = Job(
            route=route,
            payload=bytes(msg.payload),
            reply_to=default_reply,
            correlation=bytes(correlation) if correlation is not None else None,
            mid=msg.mid,
            qos=msg.qos,
            received=now,
            expires_at=now + expiry if expiry else None,
            content_type=content_type,
            topic=topic,
        )
        if job.qos > 0:
            job.key = request_key(topic, raw_reply, job.correlation, job.payload)
            if msg.dup and self.replies.answer_duplicate(job):
                return
            # Every answer is remembered, errors included: a repeat gets the same bytes.
            self.replies.dedup.remember(job.key, job)
        if raw_reply is not None:
            try:
                job.reply_to = self.reply_topics.check(raw_reply)
            except InvalidInput as e:
                self.counters["bad_requests"] += 1
                self.replies.reject_log.note(topic, "bad_response_topic", e.message)
                self.replies.finish(job, codec.error_body("bad_response_topic", e.message))
                return
        if route.kind == "cmd":
            self._spawn(self.commands.handle(job))
            return
        queue = self._queues.get(route.name)
        if queue is None:
            absent = self._absent(route.name)
            if absent is not None:
                self.replies.rejected(job, absent)
                self.replies.finish(job, codec.error_from(absent))
                return
            queue = self._queue(route.name)
        held = self._held.get(route.name)
        if held is not None or (self._shed is not None and self._shed.blocks(route.name)):
            self._hold(job, held)
            return
        if job.qos == 0 and queue.qsize() >= self.settings.queue_size:
            # The broker holds QoS 1 requests back (Receive Maximum); QoS 0 it cannot.
            self.counters["busy"] += 1
            busy = Busy(f"{route.name}: queue full, try again")
            self.replies.rejected(job, busy, count=False)  # counted as busy
            self.replies.finish(job, codec.error_from(busy))
            return
        queue.put_nowait(job)

    def _hold(self, job: Job, held: list[Job] | None) -> None:
        """Keep ``job`` unacknowledged until shedding stops (the broker holds the rest by
        the Receive Maximum). QoS 0 has no such bound: past a queue's room, "busy"."""
        if held is None:
            held = self._held[job.route.name] = []
        if job.qos == 0 and sum(j.qos == 0 for j in held) >= self.settings.queue_size:
            self.counters["busy"] += 1
            busy = Busy(f"{job.route.name}: the box is shedding load, try again later")
            self.replies.rejected(job, busy, count=False)
            self.replies.finish(job, codec.error_from(busy))
            return
        self.counters["held_shedding"] += 1
        held.append(job)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._workers.append(task)
        task.add_done_callback(lambda t: self._workers.remove(t) if t in self._workers else None)

    def _absent(self, app: str) -> HeadframeError | None:
        """Why no queue may be made for ``app`` (None: the service knows it, loaded or
        not). Checked before anything is kept per name: names are the sender's choice."""
        if app in self.service.known_apps():
            return None
        try:
            self.service.slot(app)
        except HeadframeError as e:
            return e  # not_found; not_ready while the server is starting
        return None

    def _queue(self, app: str) -> asyncio.Queue[Job]:
        queue = self._queues.get(app)
        if queue is None:
            # Unbounded here: the Receive Maximum bounds QoS 1, _route bounds QoS 0.
            queue = self._queues[app] = asyncio.Queue()
            assert self._loop is not None
            for i in range(WORKERS_PER_APP):
                self._workers.append(
                    self._loop.create_task(self._work(queue), name=f"mqtt-{app}-{i}")
                )
        return queue

    def queue_depths(self) -> dict[str, int]:
        """Requests waiting per application: queued, and held while shedding."""
        return {app: q.qsize() + len(self._held.get(app, ())) for app, q in self._queues.items()}

    async def _work(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._run_job(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mqtt: request on %s failed unexpectedly", job.route.name)
                self.replies.finish(job, codec.error_body("internal", "internal error"))
            finally:
                queue.task_done()

    async def _run_job(self, job: Job) -> None:
        if job.expires_at is not None and time.monotonic() > job.expires_at:
            # Nobody waits for it any more: answering would only add load.
            self.counters["expired"] += 1
            self.replies.dedup.forget(job.key)
            self.replies.ack(job)
            return
        start = time.perf_counter()
        kind = job.route.kind
        if kind == "chat":  # answers through the replier itself: a stream sends several
            await run_chat(self.service, job, self._limits, self.replies)
        else:
            run = run_embed if kind == "embed" else run_infer
            body, answer = await run(self.service, job, self._limits, self.replies)
            self.replies.finish(job, body, answer)
        self.telemetry.observe(job.route.name, time.perf_counter() - start)

    # --- figures for telemetry and /metrics -------------------------------------------------

    def metric_families(self) -> list[Any]:
        """Prometheus families for /metrics (the daemon registers this source)."""
        return metric_families(self.stats())

    def status(self) -> dict[str, Any]:
        """The ``mqtt`` section of /status: the bridge's ``stats``."""
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """Counters for telemetry, /status and /metrics: bridge, buffer, queues."""
        return bridge_stats(self.counters, self.conn, self.buffer, self.outbox, self.queue_depths())
