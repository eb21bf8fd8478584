"""What the MQTT handlers need from the rest of the box, as Protocols: the inference
service (``MqttService``, with the read-only ``ServiceView`` of its slots), the change path
(``Changes``: select and reload) and the ``Replier`` that answers a request. The handler
modules (commands, presence, telemetry, infer, chat, embed) are given these, never the
bridge: runtime.service.InferenceService is the service, runtime.service.changes.ChangePath
the change path, runtime.mqtt.replies.Replies the replier."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runtime.backends.base import GenerationRequest
    from runtime.catalog import PackageMeta
    from runtime.codecs.kserve import InferRequest
    from runtime.config import MqttSettings
    from runtime.errors import HeadframeError
    from runtime.mqtt.jobs import Job
    from runtime.service import Answer, ModelSlot, TextAnswer


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


class Answered(Protocol):
    """Who answered a request (runtime.service.Answer / TextAnswer): the replies name it."""

    @property
    def version(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def reload_ms(self) -> int | None: ...


class MqttService(ServiceView, Protocol):
    """Everything the bridge and its handlers call on the inference service."""

    @property
    def stats(self) -> StatsSnapshot: ...

    def add_listener(self, fn: Callable[[str, str], None]) -> None:
        """``fn(event, app)`` on "loaded", "swapped", "removed"..."""
        ...

    async def infer_request(
        self,
        app: str,
        decode: Callable[[PackageMeta], InferRequest],
        *,
        version: str | None = None,
        protocol: str = "kserve",
    ) -> tuple[InferRequest, Answer]: ...

    async def embed(
        self, app: str, texts: Sequence[str], *, protocol: str = "openai"
    ) -> Answer: ...

    async def generate(
        self, app: str, request: GenerationRequest, *, protocol: str = "openai"
    ) -> TextAnswer: ...


class Changes(Protocol):
    """The change path (runtime.service.changes.ChangePath): the commands that change what
    an application runs go through it, never to the service."""

    async def pin(self, app: str, variant: str | None, source: str) -> ModelSlot:
        """An operator's pin (None: automatic) and the swap to it."""
        ...

    async def reload(self, apps: Sequence[str] | None, by: str) -> list[ModelSlot]:
        """Load ``apps`` (None: every served one) again as the box chooses now, and swap."""
        ...


class Replier(Protocol):
    """Answers one request: reply messages (buffered, QoS 1) to its reply topic, then the
    acknowledgement of the request. ``answer`` names who computed the reply."""

    def send(self, job: Job, body: bytes, answer: Answered | None = None) -> None:
        """One reply message (a stream sends several, then ``finish``)."""
        ...

    def finish(self, job: Job, body: bytes | None = None, answer: Answered | None = None) -> None:
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
