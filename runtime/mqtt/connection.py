"""The MQTT connection: one paho-mqtt 2.x client (MQTT v5), driven by the event loop.

paho's socket I/O runs on the daemon's asyncio loop through paho's external-loop hooks
(runtime.mqtt.socket_driver). So a request arrives, is served and its reply
is published on one thread: no hand-off to and from a network thread, which on a small
box cost more than the inference itself (bench/README.md, "MQTT"). Only two things leave
the loop: inference (the model's worker, as for HTTP) and opening the socket (the TCP
connect and TLS handshake block, so they run in a worker thread).

paho's own reconnect loop backs off without jitter and hides why a connect failed, so
this module supervises the connection itself: on any failure it waits an exponentially
growing, jittered delay before trying again. A broker that is absent is normal (the HTTP
API serves meanwhile); a broker that refuses us (bad credentials, not authorised, a
client id in use) is logged once, clearly, and retried on a slower schedule.

With ``receive_maximum`` the CONNECT announces it and the connection keeps to it
(runtime.mqtt.flow): past it, nothing more is read until the handler has acknowledged
enough; TCP holds the rest at the broker.

The callbacks run on the event loop and must not block. The session is persistent
(clean start off, a session expiry interval) so that QoS 1 requests published while the
daemon is briefly away are waiting when it returns; subscriptions are made again on every
connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from runtime.config import MqttSettings
from runtime.mqtt.credentials import read_password, tls_context
from runtime.mqtt.flow import ReceiveWindow
from runtime.mqtt.loop_client import LoopClient
from runtime.mqtt.paho_compat import choose
from runtime.mqtt.plain_client import PlainClient
from runtime.mqtt.socket_driver import SocketDriver
from runtime.retry import backoff_delays

log = logging.getLogger(__name__)

# CONNACK / DISCONNECT reason codes that a retry will not cure soon: back off slowly.
_REFUSALS = {
    133: "the broker rejected the client id",
    134: "bad user name or password",
    135: "not authorised (wrong user name or password, or not allowed to connect)",
    138: "banned by the broker",
    140: "bad authentication method",
}
_TAKEN_OVER = 142  # another client connected with our client id
SHORT_SESSION_S = 5.0


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def _set_nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: a request/response round trip then waits for delayed ACKs
    # (44 to 88 ms on loopback instead of about 2 ms).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as e:
        log.debug("mqtt: could not set TCP_NODELAY: %s", e)


class _PahoLog:
    """Where paho logs: detail to our DEBUG log, formatted only when DEBUG is on; the text
    of paho's errors (TLS alerts, resets) kept as the reason for our one clear warning."""

    def __init__(self, conn: MqttConnection) -> None:
        self._conn = conn

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= logging.ERROR:
            self._conn._paho_error = fmt % args
        if log.isEnabledFor(logging.DEBUG):
            log.debug("paho: " + fmt, *args)


def _guarded(fn: Callable[..., None] | None, what: str) -> Callable[..., None] | None:
    if fn is None:
        return None

    def call(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("mqtt: %s failed", what)

    return call


class MqttConnection:
    """Keeps one client connected. ``start()`` on the running event loop; the handlers get
    paho's callbacks on that loop: on_connect(session_present), on_disconnect(),
    on_message(msg), on_publish(mid, reason). ``connected``, ``wait_connected`` and
    ``wait_subscribed`` may be used from any thread."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        subscriptions: Callable[[], list[str]],
        will: Will | None = None,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_message: Callable[[paho.MQTTMessage], None] | None = None,
        on_publish: Callable[[int, int], None] | None = None,
        manual_ack: bool = True,
        receive_maximum: int | None = None,
        fast_path: bool | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = settings.client_id or f"headframe-{settings.node}"
        self._subscriptions = subscriptions
        # A failing handler is logged and the connection goes on: an exception inside
        # paho's read path would make it handle the same packet again.
        self._on_connect_cb = _guarded(on_connect, "the connect handler")
        self._on_disconnect_cb = _guarded(on_disconnect, "the disconnect handler")
        self._on_publish_cb = _guarded(on_publish, "the acknowledgement handler")
        on_message = _guarded(on_message, "the message handler")
        self._stopping = False
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker acknowledged this session's SUBSCRIBE
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # cuts a back-off wait short on stop
        self._io: SocketDriver | None = None
        self._refused: str | None = None
        self._last_error: tuple[str, float] | None = None
        self._paho_error: str | None = None
        self._accepted = False  # this attempt got a successful CONNACK
        self._short_sessions = 0  # sessions in a row lost soon after they began
        # Called before any bytes are sent: the bridge writes staged replies to disk here,
        # so nothing leaves the process before its reply is stored (runtime.mqtt.buffer).
        self.before_send: Callable[[], None] = lambda: None
        self.connects = 0  # successful connections so far
        self.failures = 0  # failed attempts so far
        self.window: ReceiveWindow | None = None
        if receive_maximum is not None and manual_ack:
            self.window = ReceiveWindow(receive_maximum, self._hold_reads)

        if fast_path is None:  # the daemon decides once (paho_compat.start_up); else: check
            fast_path = choose(settings).fast
        self.fast_path = fast_path
        client_class = LoopClient if fast_path else PlainClient
        c = client_class(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        # paho's logger, not on_log: on_log makes paho format a line for every packet
        # (properties included), which cost more than a tenth of the bridge's time.
        c.enable_logger(_PahoLog(self))  # type: ignore[arg-type]
        c.max_inflight_messages_set(64)
        ctx = tls_context(settings)
        if ctx is not None:
            c.tls_set_context(ctx)
        if settings.username is not None:
            password = read_password(settings.password_file) if settings.password_file else None
            c.username_pw_set(settings.username, password)
        if will is not None:
            c.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        c.on_socket_open = _set_nodelay
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        if on_message is not None:
            c.on_message = lambda _c, _u, msg: self._on_message(msg, on_message)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = settings.session_expiry_s
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        c.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive,
            clean_start=False,
            properties=props,
        )
        self.client = c
        self._pending_subs: dict[int, list[str]] = {}

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Connected and the broker has answered the subscriptions (requests now reach us)."""
        return self._subscribed.wait(timeout)

    def start(self) -> None:
        """Start connecting; call on the running event loop. Returns at once."""
        self._io = SocketDriver(self.client, before_send=lambda: self.before_send())
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name="mqtt-connection"
        )

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
                log.warning("mqtt: the connection did not close within %ss", timeout)
                self.client.abort()
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._io is not None:
            self._io.detach()
        self._connected.clear()

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

    # --- the supervisor (event loop) -------------------------------------------------

    async def _supervise(self) -> None:
        s = self.settings
        delays = backoff_delays(s.reconnect_min_s, s.reconnect_max_s)
        slow = backoff_delays(s.reconnect_max_s, max(s.refused_max_s, s.reconnect_max_s))
        while not self._stopping:
            self._refused = None
            self._accepted = False
            self._paho_error = None
            started = time.monotonic()
            try:
                rc = await self._reconnect()
            except (OSError, ssl.SSLError, ValueError) as e:
                self._failed(f"cannot connect to {s.host}:{s.port}: {e}")
            except Exception as e:  # never give up reconnecting silently
                log.exception("mqtt: unexpected error connecting to %s:%s", s.host, s.port)
                self._failed(f"cannot connect to {s.host}:{s.port}: {e}")
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
                        self._failed(f"connection to {s.host}:{s.port} failed: {why}")
                else:
                    self._failed(f"connect to {s.host}:{s.port} failed: {paho.error_string(rc)}")
            if self._stopping:
                break
            self._check_flapping(started)
            if self._refused is not None:
                wait = next(slow)
            else:
                if time.monotonic() - started > 10:  # a session that lasted: start over
                    delays = backoff_delays(s.reconnect_min_s, s.reconnect_max_s)
                    slow = backoff_delays(
                        s.reconnect_max_s, max(s.refused_max_s, s.reconnect_max_s)
                    )
                wait = next(delays)
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _reconnect(self) -> MQTTErrorCode:
        """paho's own ``reconnect`` in a worker thread: the TCP connect and the TLS handshake
        block. Meanwhile the loop serves no socket of this client (the last one is closed),
        so only paho's locked paths (acknowledgements of requests still finishing) touch it."""
        client = self.client
        client.reset_io()
        rc = await asyncio.to_thread(client.reconnect)
        if self._stopping:
            opened = client.socket()
            if opened is not None:
                opened.close()
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        return rc

    def _check_flapping(self, started: float) -> None:
        """A session the broker keeps closing right after accepting it: almost always a
        second client with our client id (Mosquitto closes the older one without a
        reason code), sometimes an ACL that refuses our subscriptions."""
        if not self._accepted:
            return
        if time.monotonic() - started > SHORT_SESSION_S:
            self._short_sessions = 0
            return
        self._short_sessions += 1
        if self._short_sessions >= 3:
            self._refused = "sessions keep being closed"
            if self._short_sessions == 3 or self._short_sessions % 50 == 0:
                log.error(
                    "mqtt: the broker closed our session %d times in a row right after "
                    "accepting it: another client is probably using our client id %r (give "
                    "each box its own mqtt.node or mqtt.client_id), or its ACL refuses us",
                    self._short_sessions,
                    self.client_id,
                )

    def _failed(self, message: str) -> None:
        self.failures += 1
        # Say it once at WARNING; repeats of the same reason go to DEBUG (a broker that is
        # down for an hour must not fill the journal).
        now = time.monotonic()
        if (
            self._last_error is None
            or self._last_error[0] != message
            or now - self._last_error[1] > 300
        ):
            log.warning("mqtt: %s (retrying with back-off)", message)
            self._last_error = (message, now)
        else:
            log.debug("mqtt: %s", message)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            why = _REFUSALS.get(reason.value, str(reason))
            self._refused = why
            self._failed(f"broker {self.settings.host}:{self.settings.port} refused us: {why}")
            return
        self.connects += 1
        self._accepted = True
        self._last_error = None
        log.info(
            "mqtt: connected to %s:%s as %s (session %s)",
            self.settings.host,
            self.settings.port,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        topics = self._subscriptions()
        if topics:
            # Retain-as-published: a retained request keeps its flag, so the bridge can
            # tell it from a live one and ignore it.
            opts = SubscribeOptions(qos=1, retainAsPublished=True)
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
                log.error(
                    "mqtt: the broker refused the subscription to %s: %s (check its ACL)",
                    topic,
                    reason,
                )

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if reason.value == _TAKEN_OVER:
            self._refused = "client id in use"
            log.error(
                "mqtt: another client connected with our client id %r and took the session over; "
                "give each box its own mqtt.node or mqtt.client_id",
                self.client_id,
            )
        elif reason.value in _REFUSALS:
            self._refused = _REFUSALS[reason.value]
            log.error("mqtt: the broker disconnected us: %s", _REFUSALS[reason.value])
        elif was and not self._stopping:
            detail = f"{reason}: {self._paho_error}" if self._paho_error else str(reason)
            log.warning("mqtt: connection lost (%s); reconnecting", detail)
        if was and self._on_disconnect_cb:
            self._on_disconnect_cb()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if self._on_publish_cb:
            self._on_publish_cb(mid, reason.value)
