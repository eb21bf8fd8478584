"""What the service answers with: the result and who computed it.

A transport names the version and variant of a reply from the answer, never from a slot it
looked up itself: a hot swap may land between a lookup and the service call (it is designed
to), and only the service knows which slot computed the result. Both classes are small
frozen slotted dataclasses built once per request, so the hot path pays one allocation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from runtime.backends.base import GenerationChunk
from runtime.catalog import PackageMeta


@dataclass(frozen=True, slots=True)
class Answer:
    """A tensor or embedding request's result. ``meta`` is the package that computed it,
    for what the codecs read of it (``labels`` for classification top-k,
    ``embedding_truncation``); ``reload_ms`` is set when the request waited for its parked
    model to load again (HTTP ``X-Headframe-Reload-Ms``, MQTT user property ``reload_ms``)."""

    outputs: dict[str, np.ndarray]
    version: str
    variant: str
    meta: PackageMeta
    reload_ms: int | None = None

    @property
    def labels(self) -> Mapping[str, Sequence[str]] | None:
        return self.meta.labels


@dataclass(frozen=True, slots=True)
class TextAnswer:
    """A text request's chunk stream and who produces it. Iterate ``chunks`` to the end or
    close it (``aclose``): closing stops the model's worker generating, and the request
    is counted when the stream ends."""

    chunks: AsyncIterator[GenerationChunk]
    version: str
    variant: str
    reload_ms: int | None = None


class Decoded(Protocol):
    """A decoded tensor request (runtime.codecs.kserve.InferRequest): the inputs, and the
    outputs asked for (None: all)."""

    @property
    def inputs(self) -> Mapping[str, np.ndarray]: ...

    @property
    def output_names(self) -> list[str] | None: ...
