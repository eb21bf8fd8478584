"""What the box says about itself on its retained topics: ``{prefix}/status`` ("online",
or "offline" as the Last Will and on shutdown) and ``{prefix}/info`` (hardware, profile,
each application's variant, schema, topics, and the limits)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from runtime import __version__

if TYPE_CHECKING:
    from runtime.mqtt.bridge import MqttBridge


def status_body(bridge: MqttBridge, state: str, reason: str | None = None) -> bytes:
    doc: dict[str, Any] = {
        "status": state,
        "node": bridge.settings.node,
        "site": bridge.settings.site,
        "version": __version__,
        "time": time.time(),
    }
    if state == "online":
        doc["applications"] = bridge._app_names()
        doc["since"] = bridge._started_at
    if reason:
        doc["reason"] = reason
    return orjson.dumps(doc)


def info_doc(bridge: MqttBridge) -> dict[str, Any]:
    doc = dict(bridge._info())
    apps = []
    for s in bridge._slots():
        d = s.to_dict() if hasattr(s, "to_dict") else {"app": s.app}
        d.pop("attempts", None)
        d["topics"] = {
            "infer": bridge.topics.infer(s.app),
            "chat": bridge.topics.chat(s.app),
            "result": bridge.topics.result(s.app),
        }
        apps.append(d)
    doc["applications"] = apps
    doc["limits"] = {
        "max_payload_bytes": bridge.settings.max_payload_bytes,
        "max_json_depth": bridge.settings.max_json_depth,
        "queue_size": bridge.settings.queue_size,
    }
    doc["node"] = bridge.settings.node
    doc["site"] = bridge.settings.site
    return doc
