"""A test-side MQTT v5 client: publishes requests with Response Topic and Correlation
Data and collects the replies, the way a SCADA gateway or Node-RED flow would."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.support.wait import holds_within


class Requester:
    """Connects (optionally with a persistent session), subscribes to ``reply_topic`` on
    every connect, and records every message it receives."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        persistent: bool = False,
        reply_topic: str | None = None,
        subscribe: list[str] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client_id = client_id or f"test-{uuid.uuid4().hex[:8]}"
        self.reply_topic = reply_topic or f"test/replies/{self.client_id}"
        self.filters = [self.reply_topic, *(subscribe or [])]
        self.lock = threading.RLock()
        self.messages: list[paho.MQTTMessage] = []
        self.by_corr: dict[bytes, list[paho.MQTTMessage]] = defaultdict(list)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.sent: dict[int, bytes] = {}  # packet id -> correlation data
        self.acked: set[int] = set()  # packet ids the broker acknowledged (PUBACK)
        self.refused: set[int] = set()  # ... with a failure reason code (an ACL, say)
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_publish = self._on_publish
        c.on_disconnect = lambda *a: self.connected.clear()
        c.reconnect_delay_set(0.05, 0.2)
        if username is not None:
            c.username_pw_set(username, password)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        c.connect_async(host, port, keepalive=10, clean_start=not persistent, properties=props)
        self.client = c

    def open(self) -> Requester:
        """Connect and subscribe (``with Requester(...)`` does this, and ``close``)."""
        self.client.loop_start()
        assert self.connected.wait(10), "requester could not connect"
        assert self.subscribed.wait(10), "requester could not subscribe"
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Requester:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _on_connect(self, client: paho.Client, u: Any, flags: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            return
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])
        self.connected.set()

    def _on_publish(self, client: paho.Client, u: Any, mid: int, rc: Any, p: Any) -> None:
        with self.lock:
            self.acked.add(mid)
            if getattr(rc, "is_failure", False):
                self.refused.add(mid)

    def accepted(self) -> set[bytes]:
        """Correlation data of every request the broker acknowledged."""
        with self.lock:
            return {corr for mid, corr in self.sent.items() if mid in self.acked}

    def _on_message(self, client: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(msg)
            corr = getattr(msg.properties, "CorrelationData", None)
            if corr is not None:
                self.by_corr[bytes(corr)].append(msg)

    def request(
        self,
        topic: str,
        payload: bytes | str | dict[str, Any],
        *,
        correlation: bytes | None = None,
        qos: int = 1,
        reply_topic: str | bool | None = True,
        expiry: int | None = None,
        retain: bool = False,
        content_type: str | None = None,
    ) -> paho.MQTTMessageInfo:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        props = Properties(PacketTypes.PUBLISH)
        if reply_topic is True:
            props.ResponseTopic = self.reply_topic
        elif isinstance(reply_topic, str):
            props.ResponseTopic = reply_topic
        if correlation is not None:
            props.CorrelationData = correlation
        if expiry is not None:
            props.MessageExpiryInterval = expiry
        if content_type is not None:
            props.ContentType = content_type
        # Not under self.lock: paho calls on_publish holding its own lock.
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if correlation is not None and qos > 0:
            with self.lock:
                self.sent[info.mid] = correlation
        return info

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Whether ``predicate(self)`` holds within ``timeout`` s (checked under the lock)."""

        def check() -> bool:
            with self.lock:
                return bool(predicate(self))

        return holds_within(check, timeout, interval=0.01)

    def replies(self, correlation: bytes) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(m.payload) for m in self.by_corr.get(correlation, [])]

    def on_topic(self, topic: str) -> list[paho.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def docs(self, topic: str) -> list[dict[str, Any]]:
        """The JSON bodies received on ``topic``, in order."""
        return [json.loads(m.payload) for m in self.on_topic(topic)]


def user_properties(msg: paho.MQTTMessage) -> dict[str, str]:
    """A reply's MQTT v5 User Properties (model_version, variant, error, ...) as a dict."""
    return dict(getattr(msg.properties, "UserProperty", []) or [])
