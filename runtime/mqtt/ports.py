"""What the MQTT handlers need from the rest of the box, as Protocols: the inference
service (``MqttService``, with the read-only ``ServiceView`` of its slots) and the
``Replier`` that answers a request. The handler modules (commands, presence, telemetry,
infer, chat, embed) are given these, never the bridge: runtime.service.InferenceService
is the service, runtime.mqtt.replies.Replies the replier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from runtime.backends.base import GenerationChunk, GenerationRequest
    from runtime.catalog import ModelPackage
    from runtime.config import MqttSettings
    from runtime.errors import HeadframeError
    from runtime.mqtt.jobs import Job
    from runtime.service import ModelSlot


class ServiceView(Protocol):
    """The service's live slots, read-only."""

    def slot(self, app: str) -> ModelSlot:
        """The serving slot; ModelNotFound, or NotReady while it loads."""
        ...

    def slots(self) -> list[ModelSlot]: ...

    def known_apps(self) -> list[str]:
        """Every application added, loaded or not."""
        ...


class StatsSnapshot(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


class MqttService(ServiceView, Protocol):
    """Everything the bridge and its handlers call on the inference service."""

    @property
    def stats(self) -> StatsSnapshot: ...

    def add_listener(self, fn: Callable[[str, str], None]) -> None:
        """``fn(event, app)`` on "loaded", "swapped", "removed"..."""
        ...

    async def infer(
        self,
        app: str,
        inputs: Mapping[str, np.ndarray],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        protocol: str = "kserve",
    ) -> dict[str, np.ndarray]: ...

    def generate(
        self, app: str, request: GenerationRequest, *, protocol: str = "openai"
    ) -> AsyncIterator[GenerationChunk]: ...

    async def swap(
        self, app: str, package: ModelPackage | None = None, pin: str | None = None
    ) -> ModelSlot: ...


class Replier(Protocol):
    """Answers one request: reply messages (buffered, QoS 1) to its reply topic, then the
    acknowledgement of the request."""

    def send(self, job: Job, body: bytes) -> None:
        """One reply message (a stream sends several, then ``finish``)."""
        ...

    def finish(self, job: Job, body: bytes | None = None) -> None:
        """The last reply (if any), then the request is acknowledged."""
        ...

    def rejected(self, job: Job, error: HeadframeError, *, count: bool = True) -> None:
        """Log a refused request (INFO, rate limited) and count it as ``error_{code}``."""
        ...


@dataclass(frozen=True)
class Limits:
    """The payload limits every handler checks before parsing."""

    max_bytes: int
    max_depth: int

    @classmethod
    def of(cls, settings: MqttSettings) -> Limits:
        return cls(settings.max_payload_bytes, settings.max_json_depth)
