"""The MQTT connection: one paho-mqtt 2.x client (MQTT v5) and the thread that keeps it up.

paho's own reconnect loop backs off without jitter and hides why a connect failed, so
this module runs the network loop itself: ``connect_async`` records the broker, then a
thread connects, runs ``loop()``, and on any failure waits an exponentially growing,
jittered delay before trying again. A broker that is absent is normal (the HTTP API
serves meanwhile); a broker that refuses us (bad credentials, not authorised, a client
id in use) is logged once, clearly, and retried on a slower schedule.

Callbacks arrive on the network thread. The bridge's callbacks must only hand work to
its event loop; nothing here blocks on inference. The session is persistent (clean start
off, a session expiry interval) so that QoS 1 requests published while the daemon is
briefly away are waiting when it returns; subscriptions are made again on every connect.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from runtime.config import MqttSettings
from runtime.errors import ConfigError

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


def read_password(path: Path) -> str:
    """The password from ``path`` (one line). A relative path is looked up in systemd's
    $CREDENTIALS_DIRECTORY first, so ``LoadCredential=mqtt-password`` works as is."""
    candidates = [path]
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and not path.is_absolute():
        candidates.insert(0, Path(creds) / path)
    for candidate in candidates:
        try:
            return candidate.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"mqtt.password_file {candidate}: cannot read: {e.strerror}") from e
    raise ConfigError(f"mqtt.password_file {path}: file not found")


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """An SSL context for the broker, or None for plain TCP."""
    tls = settings.tls
    if tls is None:
        return None
    try:
        ctx = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
        if tls.cert_file is not None:
            ctx.load_cert_chain(
                str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
            )
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"mqtt.tls: cannot load certificates: {e}") from e
    return ctx


def backoff_delays(min_s: float, max_s: float, rng: random.Random | None = None) -> Any:
    """Exponential back-off with "equal jitter": each delay is in [d/2, d] and d doubles up
    to ``max_s``. Jitter keeps a fleet of boxes from reconnecting in lock step."""
    rng = rng or random.Random()
    d = min_s
    while True:
        yield d / 2 + rng.random() * d / 2
        d = min(d * 2, max_s)


def _set_nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: a request/response round trip then waits for delayed ACKs
    # (44 to 88 ms on loopback instead of about 2 ms).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as e:
        log.debug("mqtt: could not set TCP_NODELAY: %s", e)


class MqttConnection:
    """Keeps one client connected. ``handlers`` get paho's callbacks on the network thread:
    on_connect(session_present), on_disconnect(), on_message(msg), on_publish(mid, reason)."""

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
    ) -> None:
        self.settings = settings
        self.client_id = settings.client_id or f"headframe-{settings.node}"
        self._subscriptions = subscriptions
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self._on_publish_cb = on_publish
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker acknowledged this session's SUBSCRIBE
        self._thread: threading.Thread | None = None
        self._refused: str | None = None
        self._last_error: tuple[str, float] | None = None
        self._paho_error: str | None = None
        self._accepted = False  # this attempt got a successful CONNACK
        self._short_sessions = 0  # sessions in a row lost soon after they began
        self.connects = 0  # successful connections so far
        self.failures = 0  # failed attempts so far

        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        c.on_log = self._on_log
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
            c.on_message = lambda _c, _u, msg: on_message(msg)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = settings.session_expiry_s
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
        self._thread = threading.Thread(target=self._run, name="headframe-mqtt", daemon=True)
        # paho writes to the socket from the publishing thread unless it believes a network
        # thread exists; with ours registered, every write happens on the network thread.
        self.client._thread = self._thread
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect normally (no Last Will) and end the network thread."""
        self._stop.set()
        if self._connected.is_set():
            self.client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("mqtt: network thread did not stop within %ss", timeout)
        self.client._thread = None
        self._connected.clear()

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, properties: Properties | None
    ) -> paho.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def ack(self, mid: int, qos: int) -> None:
        if qos > 0:
            self.client.ack(mid, qos)

    # --- network thread -------------------------------------------------------------

    def _run(self) -> None:
        s = self.settings
        delays = backoff_delays(s.reconnect_min_s, s.reconnect_max_s)
        slow = backoff_delays(s.reconnect_max_s, max(s.refused_max_s, s.reconnect_max_s))
        while not self._stop.is_set():
            self._refused = None
            self._accepted = False
            self._paho_error = None
            started = time.monotonic()
            try:
                rc = self.client.reconnect()
            except (OSError, ssl.SSLError, ValueError) as e:
                self._failed(f"cannot connect to {s.host}:{s.port}: {e}")
            else:
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    while not self._stop.is_set():
                        rc = self.client.loop(timeout=0.5)
                        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                            break
                    self._subscribed.clear()
                    if self._connected.is_set():
                        self._connected.clear()
                        if self._on_disconnect_cb:
                            self._on_disconnect_cb()
                    if not self._accepted and self._refused is None and not self._stop.is_set():
                        why = self._paho_error or "closed before the broker accepted us"
                        self._failed(f"connection to {s.host}:{s.port} failed: {why}")
                else:
                    self._failed(f"connect to {s.host}:{s.port} failed: {paho.error_string(rc)}")
            if self._stop.is_set():
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
            self._stop.wait(wait)

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

    def _on_log(self, client: paho.Client, userdata: Any, level: int, text: str) -> None:
        # paho's own messages are detail; its errors (TLS alerts, resets) become the reason
        # in our one clear warning instead of a line per attempt.
        if level == paho.MQTT_LOG_ERR:
            self._paho_error = text
        log.debug("paho: %s", text)

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
        elif was and not self._stop.is_set():
            detail = f"{reason}: {self._paho_error}" if self._paho_error else str(reason)
            log.warning("mqtt: connection lost (%s); reconnecting", detail)
        if was and self._on_disconnect_cb:
            self._on_disconnect_cb()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if self._on_publish_cb:
            self._on_publish_cb(mid, reason.value)
