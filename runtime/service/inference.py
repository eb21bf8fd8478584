"""The inference service: requests answered on the live slots, with stats.

Transport-neutral (MLServer's DataPlane): HTTP and MQTT adapters decode their wire
form, call ``infer``/``infer_request``/``embed``/``generate`` here, and encode what comes
back; neither knows the other exists. Each answer (runtime.service.answer) names the
version and variant that computed it, so no transport looks a slot up to say so: between
the slot's lookup and the worker's call there is no await (unless the model was parked),
so no swap lands in between. The slots themselves, hot swap and parking are the
``SlotTable``'s (runtime.service.slots).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from runtime.backends.base import (
    GenerationChunk,
    GenerationRequest,
)
from runtime.catalog import PackageMeta
from runtime.config import ApplicationSettings
from runtime.errors import HeadframeError, InvalidInput, ModelNotFound, NotReady
from runtime.images.step import image_step
from runtime.service.answer import Answer, Decoded, TextAnswer
from runtime.service.slot import (
    LoadedModel,
    Loader,
    ModelSlot,
    tensor_names,
    validate_inputs,
)
from runtime.service.slots import UNKNOWN_APP, Readiness, SlotTable
from runtime.service.stats import ServiceStats

__all__ = [
    "UNKNOWN_APP", "Answer", "InferenceService", "LoadedModel", "Loader", "ModelSlot", "TextAnswer",
]  # fmt: skip


R = TypeVar("R", bound=Decoded)


class InferenceService(SlotTable):
    """The one service every transport calls: requests answered on the slots of its
    ``SlotTable``, each answer naming who computed it. Create and use it on one event loop."""

    def __init__(
        self,
        loader: Loader,
        *,
        queue_size: int = 64,
        workers: int = 1,
        app_settings: Mapping[str, ApplicationSettings] | None = None,
        readiness: Readiness = "all",
    ) -> None:
        super().__init__(
            loader,
            queue_size=queue_size,
            workers=workers,
            app_settings=app_settings,
            readiness=readiness,
        )
        self.stats = ServiceStats()

    # ---- requests --------------------------------------------------------------------
    def _serving(self, app: str, version: str | None) -> ModelSlot:
        if self._closing:
            raise NotReady("the server is shutting down", retry_after_s=5.0)
        slot = self.slot(app, version)
        self._last_used[app] = time.monotonic()
        return slot

    async def _awake(self, app: str, slot: ModelSlot, version: str | None) -> ModelSlot:
        """``slot`` loaded again if it was parked (under the app's lock: a swap may have
        landed meanwhile, so the version asked for is checked again)."""
        slot = await self._reload(app)
        if version is not None and version != slot.package.version:
            raise ModelNotFound(f"{app} serves version {slot.package.version}, not {version!r}")
        self._last_used[app] = time.monotonic()
        return slot

    async def _compute(
        self,
        app: str,
        slot: ModelSlot,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None,
        version: str | None,
    ) -> Answer:
        """Validate and run one tensor request on ``slot``; the answer names that slot."""
        waited = None
        if slot.parked_since is not None:
            start = time.perf_counter()
            slot = await self._awake(app, slot, version)
            waited = round((time.perf_counter() - start) * 1000)
        step = image_step(app, slot.package.meta.images, slot.schema.inputs, inputs)
        validate_inputs(app, slot.schema, inputs, step.names if step else ())
        if outputs is not None:
            known = {s.name for s in slot.schema.outputs}
            for name in outputs:
                if name not in known:
                    raise InvalidInput(
                        f"{app}: unknown output {name!r}; the model gives "
                        f"{tensor_names(slot.schema.outputs)}"
                    )
        # No await between the slot's lookup and this call (unless it was parked): a swap
        # cannot land in between, so the slot named below is the one that computes.
        try:
            result = await slot.worker.infer(inputs, prepare=step)
        except asyncio.CancelledError:
            if step is not None:  # the caller has gone: stop decoding its pictures
                step.abandon()
            raise
        if outputs is not None:
            result = {n: result[n] for n in outputs}
        package = slot.package
        return Answer(result, package.version, slot.variant.id, package.meta, waited)

    def _tensor_slot(self, app: str, version: str | None) -> ModelSlot:
        slot = self._serving(app, version)
        if slot.task == "text":  # tensor and embedding applications take tensors
            raise InvalidInput(f"{app} is a text application; use the OpenAI API")
        return slot

    async def infer(
        self,
        app: str,
        inputs: Mapping[str, np.ndarray],
        *,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        protocol: str = "kserve",
    ) -> Answer:
        """Validate, queue and run one tensor request: the requested outputs, and the
        version and variant that computed them. ``version``: the one the caller asks for
        (ModelNotFound when another serves)."""
        start = time.perf_counter()
        status = "ok"
        try:
            slot = self._tensor_slot(app, version)
            return await self._compute(app, slot, inputs, outputs, version)
        except HeadframeError as e:
            status = e.code
            raise
        except BaseException:
            status = "cancelled"
            raise
        finally:
            self.stats.record(self.stats_label(app), protocol, status, time.perf_counter() - start)

    async def infer_request(
        self,
        app: str,
        decode: Callable[[PackageMeta], R],
        *,
        version: str | None = None,
        protocol: str = "kserve",
    ) -> tuple[R, Answer]:
        """``infer`` for a request whose decoding reads the package (a picture needs its
        image contract): ``decode(meta)`` runs once the serving slot is known, with that
        slot's package; an unknown application or version is refused before anything is
        decoded, and a request that fails to decode is counted here like any refusal."""
        start = time.perf_counter()
        status = "ok"
        try:
            slot = self._tensor_slot(app, version)
            request = decode(slot.package.meta)
            answer = await self._compute(app, slot, request.inputs, request.output_names, version)
            return request, answer
        except HeadframeError as e:
            status = e.code
            raise
        except BaseException:
            status = "cancelled"
            raise
        finally:
            self.stats.record(self.stats_label(app), protocol, status, time.perf_counter() - start)

    async def embed(self, app: str, texts: Sequence[str], *, protocol: str = "openai") -> Answer:
        """Embed ``texts`` as one request on an embedding application's worker (the
        contract of runtime.backends.embedding: ``text`` BYTES in; ``embedding`` and
        ``tokens`` out)."""
        start = time.perf_counter()
        status = "ok"
        try:
            slot = self._serving(app, None)
            if slot.task != "embedding":
                raise InvalidInput(f"model: {app!r} is a {slot.task} model, not an embedding one")
            rows = np.array([t.encode("utf-8") for t in texts], dtype=object)
            return await self._compute(app, slot, {"text": rows}, None, None)
        except HeadframeError as e:
            status = e.code
            raise
        except BaseException:
            status = "cancelled"
            raise
        finally:
            self.stats.record(self.stats_label(app), protocol, status, time.perf_counter() - start)

    async def generate(
        self, app: str, request: GenerationRequest, *, protocol: str = "openai"
    ) -> TextAnswer:
        """A text application's chunk stream, and who produces it. Raises before any chunk
        for an unknown or unready application (or a reload that failed); the chunks come
        as they are produced. The request is counted when the stream ends."""
        start = time.perf_counter()
        try:
            slot = self._serving(app, None)
            if slot.task != "text":
                raise InvalidInput(f"{app} is not a text application (its task is {slot.task})")
            waited = None
            if slot.parked_since is not None:
                slot = await self._awake(app, slot, None)
                waited = round((time.perf_counter() - start) * 1000)
        except HeadframeError as e:
            self._count_text(app, protocol, e.code, start, 0)
            raise
        except BaseException:
            self._count_text(app, protocol, "cancelled", start, 0)
            raise
        chunks = self._stream(app, slot, request, protocol, start)
        return TextAnswer(chunks, slot.package.version, slot.variant.id, waited)

    async def _stream(
        self, app: str, slot: ModelSlot, request: GenerationRequest, protocol: str, start: float
    ) -> AsyncIterator[GenerationChunk]:
        status = "ok"
        tokens = 0
        chunks = 0
        try:
            async for chunk in slot.worker.generate(request):
                chunks += 1
                tokens = max(tokens, chunk.completion_tokens)
                yield chunk
        except HeadframeError as e:
            status = e.code
            raise
        except BaseException:
            status = "cancelled"
            raise
        finally:
            self._count_text(app, protocol, status, start, tokens or chunks)

    def _count_text(self, app: str, protocol: str, status: str, start: float, tokens: int) -> None:
        label = self.stats_label(app)
        self.stats.record(label, protocol, status, time.perf_counter() - start)
        self.stats.record_tokens(label, protocol, tokens)
