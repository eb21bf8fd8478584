"""A Sparkplug host application written for the tests: subscribes to a group, decodes
with tests/support/sparkplug_wire.py, publishes STATE and commands."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as paho

from tests.support import sparkplug_wire as wire
from tests.support.mqtt_client import Requester
from tests.support.wait import wait_until


@dataclass
class Seen:
    topic: str
    kind: str
    device: str | None
    payload: wire.WirePayload


def _seen(msg: paho.MQTTMessage, prefix: str) -> Seen | None:
    """A Sparkplug message as the host reads it (None for the client's own reply topic)."""
    if not msg.topic.startswith(prefix):
        return None
    parts = msg.topic.split("/")
    device = parts[4] if len(parts) > 4 else None
    return Seen(msg.topic, parts[2], device, wire.read(msg.payload))


class Host:
    """Subscribes to ``spBv1.0/{group}/#`` through the test MQTT client (Requester) and
    decodes what arrives with its own reader."""

    def __init__(
        self,
        host: str,
        port: int,
        group: str,
        host_id: str = "scada",
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.group, self.host_id = group, host_id
        self.prefix = f"spBv1.0/{group}/"
        self.client = Requester(
            host, port, client_id=f"host-{uuid.uuid4().hex[:6]}", subscribe=[f"{self.prefix}#"],
            username=username, password=password,
        ).open()  # fmt: skip
        self._seen: list[Seen | None] = []  # decoded so far, in arrival order

    def close(self) -> None:
        self.client.close()

    def messages(self, kind: str | None = None) -> list[Seen]:
        with self.client.lock:
            new = self.client.messages[len(self._seen) :]
            for msg in new:
                self._seen.append(_seen(msg, self.prefix))
            return [s for s in self._seen if s is not None and (kind is None or s.kind == kind)]

    def wait(self, predicate: Any, timeout: float = 20.0) -> Any:
        """``predicate()``'s first true value; on a timeout, says what the host saw."""
        try:
            return wait_until(predicate, "the host to see it", timeout)
        except AssertionError as e:
            seen = [(s.kind, s.payload.seq) for s in self.messages()]
            raise AssertionError(f"{e}; saw {seen}") from None

    def state(self, online: bool, timestamp: int | None = None) -> None:
        body = {"online": online, "timestamp": timestamp or int(time.time() * 1000)}
        topic = f"spBv1.0/STATE/{self.host_id}"
        info = self.client.request(topic, orjson.dumps(body), reply_topic=False, retain=True)
        info.wait_for_publish(5)

    def command(self, edge: str, metrics: list[bytes], device: str | None = None) -> None:
        kind = "DCMD" if device else "NCMD"
        topic = f"spBv1.0/{self.group}/{kind}/{edge}" + (f"/{device}" if device else "")
        body = wire.write(metrics, timestamp=int(time.time() * 1000))
        self.client.request(topic, body, qos=0, reply_topic=False).wait_for_publish(5)
