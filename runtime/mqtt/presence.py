"""What the box says about itself on its retained topics: ``{prefix}/status`` ("online",
or "offline" as the Last Will and on shutdown) and ``{prefix}/info`` (hardware, profile,
each application's variant, schema, topics, and the limits).

Each application's ``topics`` name only what it answers: ``infer`` for a tensor model,
``chat`` for a text model, ``embed`` for an embedding model, and ``result`` for all."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from runtime import __version__

if TYPE_CHECKING:
    from runtime.config import MqttSettings
    from runtime.mqtt.ports import ServiceView
    from runtime.mqtt.topics import Topics
    from runtime.service import ModelSlot


class Presence:
    """Builds the status and info documents from the settings, the topics, the service's
    slots and ``info()`` (the hardware and profile part, from the daemon)."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: Topics,
        service: ServiceView,
        info: Callable[[], dict[str, Any]],
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._service = service
        self._info = info
        self.started_at = time.time()
        # The request topic each task answers on (a chat topic on a tensor model would
        # only ever answer an error).
        self._request_topic: dict[str, tuple[str, Callable[[str], str]]] = {
            "tensor": ("infer", topics.infer),
            "text": ("chat", topics.chat),
            "embedding": ("embed", topics.embed),
        }

    def slots(self) -> list[ModelSlot]:
        try:
            return list(self._service.slots())
        except Exception:  # a service still starting: nothing to list yet
            return []

    def app_names(self) -> list[str]:
        return sorted(s.app for s in self.slots())

    def status_body(self, state: str, reason: str | None = None) -> bytes:
        doc: dict[str, Any] = {
            "status": state,
            "node": self._settings.node,
            "site": self._settings.site,
            "version": __version__,
            "time": time.time(),
        }
        if state == "online":
            doc["applications"] = self.app_names()
            doc["since"] = self.started_at
        if reason:
            doc["reason"] = reason
        return orjson.dumps(doc)

    def topics_for(self, slot: ModelSlot) -> dict[str, str]:
        kind, topic = self._request_topic.get(slot.task, self._request_topic["tensor"])
        return {kind: topic(slot.app), "result": self._topics.result(slot.app)}

    def info_doc(self) -> dict[str, Any]:
        doc = dict(self._info())
        apps = []
        for s in self.slots():
            d = s.to_dict()
            d.pop("attempts", None)
            d["topics"] = self.topics_for(s)
            apps.append(d)
        doc["applications"] = apps
        doc["limits"] = {
            "max_payload_bytes": self._settings.max_payload_bytes,
            "max_json_depth": self._settings.max_json_depth,
            "queue_size": self._settings.queue_size,
        }
        doc["node"] = self._settings.node
        doc["site"] = self._settings.site
        return doc
