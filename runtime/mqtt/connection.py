"""The MQTT session: one paho-mqtt 2.x client (MQTT v5), driven by the event loop. The
bridge, the Sparkplug edge node and the stream bindings each keep one; none has its own.

paho's socket I/O runs on the daemon's asyncio loop through paho's external-loop hooks
(runtime.mqtt.socket_driver): a request arrives, is served and answered on one thread, no
hand-off to and from a network thread, which on a small box cost more than the inference
(bench/README.md, "MQTT"). Only inference (the model's worker) and opening the socket (TCP
connect and TLS handshake block: a worker thread) leave the loop.

paho's own reconnect loop backs off without jitter and hides why a connect failed, so a
supervisor here waits an exponentially growing, jittered delay (runtime.retry) after any
failure. A broker that is absent is normal (HTTP serves meanwhile); one that refuses us
(credentials, not authorised, a client id in use) is logged once and retried on a slower
schedule (runtime.mqtt.diagnostics).

The users differ in their session: the bridge's is persistent (a session expiry interval:
QoS 1 requests wait while the daemon is briefly away), Sparkplug's and the bindings' clean
(Clean Start, expiry 0). paho sends a QoS 1 message it had no PUBACK for again after any
reconnect, so a user that must not repeat one waits for its PUBACK (Sparkplug's NDEATH).
The Will is built by a callable for every CONNECT (Sparkplug's NDEATH carries the bdSeq of
that very session); subscriptions are made again on every connect. With
``receive_maximum`` CONNECT announces it and the connection keeps to it (runtime.mqtt.flow).

The callbacks run on the event loop and must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from runtime.config import MqttSettings
from runtime.mqtt.client_setup import PahoLog, new_client
from runtime.mqtt.diagnostics import Diagnostics
from runtime.mqtt.flow import ReceiveWindow
from runtime.mqtt.paho_compat import choose
from runtime.mqtt.socket_driver import SocketDriver
from runtime.retry import backoff_delays

log = logging.getLogger(__name__)

LASTED_S = 10.0  # a session that lasted this long starts the back-off over
WILL_TIMEOUT_S = 5.0  # how long the connecting thread waits for the loop to build the Will
RECENT_WAITS = 16  # back-off waits kept for /status


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


WillFactory = Callable[[], Will | None]


def _guarded(fn: Callable[..., None] | None, what: str) -> Callable[..., None] | None:
    if fn is None:
        return None

    def call(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s failed", what)

    return call


def _close_quietly(sock: Any) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


class MqttConnection:
    """Keeps one session connected. ``settings`` name the broker and how to reach it
    (host, port, keepalive, TLS, user name and password file, the back-off bounds, the
    bridge's session expiry); ``name`` prefixes every log line ("mqtt", "sparkplug",
    "streams"); ``client_id`` defaults to ``settings.client_id`` or headframe-{node}.

    ``clean_start``: a clean session (Clean Start, session expiry 0) instead of the
    persistent one. ``will()`` is called on the event loop for every CONNECT, once the
    socket is open and just before CONNECT is written, so an attempt that finds no broker
    builds none; None: no Will. Subscriptions (``subscriptions()``, at ``subscribe_qos``)
    are made on every connect.

    ``start()`` on the running event loop; the handlers get paho's callbacks on that loop:
    on_connect(session_present), on_disconnect(), on_message(msg), on_publish(mid, reason).
    ``connected``, ``wait_connected`` and ``wait_subscribed`` may be used from any thread."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        subscriptions: Callable[[], list[str]],
        name: str = "mqtt",
        client_id: str | None = None,
        clean_start: bool = False,
        will: WillFactory | None = None,
        subscribe_qos: int = 1,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_message: Callable[[paho.MQTTMessage], None] | None = None,
        on_publish: Callable[[int, int], None] | None = None,
        manual_ack: bool = True,
        receive_maximum: int | None = None,
        fast_path: bool | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.client_id = client_id or settings.client_id or f"headframe-{settings.node}"
        self.clean_start = clean_start
        self._where = f"{settings.host}:{settings.port}"
        self._subscriptions = subscriptions
        self._subscribe_qos = subscribe_qos
        self._will = will
        # A failing handler is logged and the connection goes on: an exception inside
        # paho's read path would make it handle the same packet again.
        self._on_connect_cb = _guarded(on_connect, f"{name}: the connect handler")
        self._on_disconnect_cb = _guarded(on_disconnect, f"{name}: the disconnect handler")
        self._on_publish_cb = _guarded(on_publish, f"{name}: the acknowledgement handler")
        on_message = _guarded(on_message, f"{name}: the message handler")
        self._stopping = False
        self._renew = False  # reconnect_now(): this session ends on purpose
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker acknowledged this session's SUBSCRIBE
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # cuts a back-off wait short on stop
        self._io: SocketDriver | None = None
        self._refused: str | None = None
        self._paho_error: str | None = None
        self._accepted = False  # this attempt got a successful CONNACK
        self.diagnostics = Diagnostics(name, self.client_id)
        # Called before any bytes are sent: the bridge writes staged replies to disk here,
        # so nothing leaves the process before its reply is stored (runtime.mqtt.buffer).
        self.before_send: Callable[[], None] = lambda: None
        self.connects = 0  # successful connections so far
        self.waits: deque[float] = deque(maxlen=RECENT_WAITS)  # back-off waits, newest last
        self.window: ReceiveWindow | None = None
        if receive_maximum is not None and manual_ack:
            self.window = ReceiveWindow(receive_maximum, self._hold_reads)

        if fast_path is None:  # the daemon decides once (paho_compat.start_up); else: check
            fast_path = choose(settings).fast
        self.fast_path = fast_path
        c = new_client(
            settings,
            client_id=self.client_id,
            fast_path=fast_path,
            manual_ack=manual_ack,
            paho_log=PahoLog(name, self._note_paho_error),
            on_socket_open=self._socket_opened,
        )
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        if on_message is not None:
            c.on_message = lambda _c, _u, msg: self._on_message(msg, on_message)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean_start else settings.session_expiry_s
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        c.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive,
            clean_start=clean_start,
            properties=props,
        )
        self.client = c
        self._pending_subs: dict[int, list[str]] = {}

    @property
    def failures(self) -> int:
        """Attempts that failed so far."""
        return self.diagnostics.failures

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Connected and the broker has answered the subscriptions (requests now reach us)."""
        return self._subscribed.wait(timeout)

    def status(self) -> dict[str, Any]:
        """The session as /status shows it under each user's section."""
        return {
            "connected": self.connected,
            "broker": self._where,
            "client_id": self.client_id,
            "session": "clean" if self.clean_start else "persistent",
            "connects": self.connects,
            "failures": self.failures,
            "last_error": self.diagnostics.last_error,
            "recent_waits_s": [round(w, 3) for w in self.waits],
        }

    def start(self) -> None:
        """Start connecting; call on the running event loop. Returns at once."""
        self._loop = asyncio.get_running_loop()
        self._io = SocketDriver(self.client, before_send=lambda: self.before_send())
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._supervise(), name=f"{self.name}-connection")

    async def stop(self, timeout: float = 5.0) -> None:
        """Disconnect normally (no Last Will) and stop reconnecting."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._connected.is_set():
            self.client.disconnect()  # the writer sends DISCONNECT, then paho closes
        else:
            self.client.abort()  # a handshake in progress must not complete after stop
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.warning("%s: the connection did not close within %ss", self.name, timeout)
                self.client.abort()
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._io is not None:
            self._io.detach()
        self._connected.clear()

    def reconnect_now(self) -> None:
        """End this session normally (DISCONNECT: the broker drops the Will) and open a new
        one at once, with a new Will; on the event loop. Not a failure: no back-off."""
        if self._connected.is_set() and not self._stopping:
            self._renew = True
            self.client.disconnect()

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, properties: Properties | None
    ) -> paho.MQTTMessageInfo:
        """On the event loop only (the socket driver's write wake-up is not thread-safe)."""
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def ack(self, mid: int, qos: int) -> None:
        if qos > 0:
            self.client.ack(mid, qos)
            if self.window is not None:
                self.window.acked(mid)

    def _on_message(self, msg: paho.MQTTMessage, handler: Callable[..., None]) -> None:
        if self.window is not None:
            self.window.received(msg.mid, msg.qos)
        handler(msg)

    def _hold_reads(self, hold: bool) -> None:
        if self._io is not None:
            self._io.hold_reads(hold)

    def _note_paho_error(self, text: str) -> None:
        self._paho_error = text

    # --- the supervisor (event loop) -------------------------------------------------

    def _schedules(self) -> tuple[Iterator[float], Iterator[float]]:
        """Fresh back-off schedules: broker absent, and broker refusing us (slower)."""
        s = self.settings
        return (
            backoff_delays(s.reconnect_min_s, s.reconnect_max_s),
            backoff_delays(s.reconnect_max_s, max(s.refused_max_s, s.reconnect_max_s)),
        )

    async def _supervise(self) -> None:
        where = self._where
        delays, slow = self._schedules()
        while not self._stopping:
            self._refused = None
            self._accepted = False
            self._paho_error = None
            self._renew = False
            started = time.monotonic()
            try:
                rc = await self._reconnect()
            except (OSError, ssl.SSLError, ValueError) as e:
                if not self._stopping:
                    self.diagnostics.failed(f"cannot connect to {where}: {e}")
            except Exception as e:  # never give up reconnecting silently
                if not self._stopping:
                    log.exception("%s: unexpected error connecting to %s", self.name, where)
                    self.diagnostics.failed(f"cannot connect to {where}: {e}")
            else:
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    assert self._io is not None
                    if self.window is not None:
                        self.window.reset_hold()  # serve() reads from the start
                    await self._io.serve()
                    self._subscribed.clear()
                    if self._connected.is_set():
                        self._connected.clear()
                        if self._on_disconnect_cb:
                            self._on_disconnect_cb()
                    if not self._accepted and self._refused is None and not self._stopping:
                        why = self._paho_error or "closed before the broker accepted us"
                        self.diagnostics.failed(f"connection to {where} failed: {why}")
                elif not self._stopping:
                    self.diagnostics.failed(f"connect to {where} failed: {paho.error_string(rc)}")
            if self._stopping:
                break
            lasted = time.monotonic() - started
            if self._renew and self._accepted:  # asked for: a new session now
                delays, slow = self._schedules()
                continue
            flapping = self.diagnostics.session_ended(self._accepted, lasted)
            if flapping is not None:
                self._refused = flapping
            if self._refused is not None:
                wait = next(slow)
            else:
                if lasted > LASTED_S:  # a session that lasted: start over
                    delays, slow = self._schedules()
                wait = next(delays)
            self.waits.append(wait)
            log.debug("%s: next attempt in %.3f s", self.name, wait)
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _reconnect(self) -> MQTTErrorCode:
        """paho's own ``reconnect`` in a worker thread: the TCP connect and the TLS handshake
        block. Meanwhile the loop serves no socket of this client (the last one is closed),
        so only paho's locked paths (acknowledgements of requests still finishing) touch it."""
        client = self.client
        client.reset_io()
        try:
            rc = await asyncio.to_thread(client.reconnect)
        except Exception:
            _close_quietly(client.socket())  # opened, then the Will could not be built
            raise
        if self._stopping:
            _close_quietly(client.socket())
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        return rc

    def _socket_opened(self, sock: Any) -> None:
        """On the connecting thread, once the socket (and TLS) is up and before CONNECT is
        written: this session's Will, built on the event loop, where its users' state
        lives. An error here ends the attempt (paho raises it out of ``reconnect``)."""
        if self._will is None:
            return
        if self._stopping or self._loop is None:
            raise ConnectionAbortedError("the connection is stopping")
        future = asyncio.run_coroutine_threadsafe(self._build_will(), self._loop)
        try:
            will = future.result(WILL_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise
        if will is None:
            self.client.will_clear()
        else:
            self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)

    async def _build_will(self) -> Will | None:
        assert self._will is not None
        return self._will()

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = self.diagnostics.refused(reason.value, str(reason), self._where)
            return
        self.connects += 1
        self._accepted = True
        self.diagnostics.accepted()
        log.info(
            "%s: connected to %s as %s (session %s)",
            self.name,
            self._where,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        topics = self._subscriptions()
        if topics:
            # Retain-as-published: a retained request keeps its flag, so the bridge can
            # tell it from a live one and ignore it.
            opts = SubscribeOptions(qos=self._subscribe_qos, retainAsPublished=True)
            rc, mid = client.subscribe([(t, opts) for t in topics])
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                self._pending_subs[mid] = topics
        self._connected.set()
        if self._on_connect_cb:
            self._on_connect_cb(bool(flags.session_present))

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        topics = self._pending_subs.pop(mid, [])
        if self._connected.is_set():
            self._subscribed.set()
        for topic, reason in zip(topics, reasons, strict=False):
            if reason.is_failure:
                self.diagnostics.subscription_refused(topic, reason)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        why = self.diagnostics.disconnected(reason.value)
        if why is not None:
            self._refused = why
        elif was and not self._stopping and not self._renew:
            detail = f"{reason}: {self._paho_error}" if self._paho_error else str(reason)
            log.warning("%s: connection lost (%s); reconnecting", self.name, detail)
        if was and self._on_disconnect_cb:
            self._on_disconnect_cb()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if self._on_publish_cb:
            self._on_publish_cb(mid, reason.value)
