"""A Sparkplug host application written for the tests: subscribes to a group, decodes
with tests/sparkplug/wire.py, publishes STATE and commands."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import sparkplug_wire as wire


@dataclass
class Seen:
    topic: str
    kind: str
    device: str | None
    payload: wire.WirePayload
    at: float


class Host:
    def __init__(self, host: str, port: int, group: str, host_id: str = "scada") -> None:
        self.group, self.host_id = group, host_id
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"host-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv5,
        )  # fmt: skip
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.ready.wait(10), "the test host did not connect"

    def _on_connect(self, c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(f"spBv1.0/{self.group}/#", qos=1)
        time.sleep(0.2)
        self.ready.set()

    def _on_message(self, c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        kind = parts[2]
        device = parts[4] if len(parts) > 4 else None
        with self.lock:
            self.seen.append(Seen(msg.topic, kind, device, wire.read(msg.payload), time.time()))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def messages(self, kind: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if kind is None or s.kind == kind]

    def wait(self, predicate: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out; saw {[(s.kind, s.payload.seq) for s in self.seen]}")

    def state(self, online: bool, timestamp: int | None = None) -> None:
        body = {"online": online, "timestamp": timestamp or int(time.time() * 1000)}
        self.client.publish(f"spBv1.0/STATE/{self.host_id}", orjson.dumps(body), qos=1,
                            retain=True).wait_for_publish(5)  # fmt: skip

    def command(self, edge: str, metrics: list[bytes], device: str | None = None) -> None:
        kind = "DCMD" if device else "NCMD"
        topic = f"spBv1.0/{self.group}/{kind}/{edge}" + (f"/{device}" if device else "")
        self.client.publish(topic, wire.write(metrics, timestamp=int(time.time() * 1000)),
                            qos=0).wait_for_publish(5)  # fmt: skip
