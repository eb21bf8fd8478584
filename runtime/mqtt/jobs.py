"""One MQTT request on its way through the bridge, and what identifies it across
redeliveries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from runtime.mqtt.topics import Route


def request_key(
    topic: str, reply_topic: str | None, correlation: bytes | None, body: bytes
) -> bytes:
    """What identifies a QoS 1 request across redeliveries (packet ids change)."""
    parts = (topic.encode(), (reply_topic or "").encode(), correlation or b"", body)
    return hashlib.blake2b(b"\0".join(parts), digest_size=16).digest()


@dataclass
class Job:
    route: Route
    payload: bytes
    reply_to: str
    correlation: bytes | None
    mid: int
    qos: int
    received: float
    expires_at: float | None
    key: bytes | None = None
    content_type: str | None = None  # MQTT v5 Content Type: image/jpeg|png means a picture
    topic: str = ""  # the request's topic, for the log
    done: bool = False
    replies: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)
    more_acks: list[int] = field(default_factory=list)  # redeliveries under other packet ids
