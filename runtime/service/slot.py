"""A model slot: one application as it serves now, and the checks made against its schema.

``ModelSlot`` is what the service switches in one assignment on a swap, what /status, MQTT
``info`` and the OpenAI model list read, and what ``InferenceService.park`` marks parked
(the model unloaded, the application still ready and listed). ``validate_inputs`` checks a
request against the loaded model's schema before it is queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from runtime.backends.base import Backend, BackendInfo, IOSchema
from runtime.catalog import ModelPackage, TensorSpec, Variant
from runtime.errors import InvalidInput
from runtime.service.worker import ModelWorker
from runtime.tensors import to_kserve_datatype

log = logging.getLogger(__name__)


class LoadedModel(Protocol):
    """What the loader returns (runtime.loading.loader.LoadedModel satisfies this)."""

    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Any
    attempts: list[Any]


class Loader(Protocol):
    """``loader(package, pin)``: choose and load (BLOCKING; the service runs it in a
    thread); ``pin`` forces a variant for this load. ``loader(package, pin, decided)``
    loads a decision the change path made already (runtime.selection.Selection), without
    deciding again (runtime.loading.loader.VariantLoader)."""

    def __call__(
        self, package: ModelPackage, pin: str | None, decided: Any = None, /
    ) -> LoadedModel: ...


@dataclass
class ModelSlot:
    """One application as it serves now."""

    app: str
    loaded: LoadedModel
    schema: IOSchema
    backend_info: BackendInfo
    worker: ModelWorker
    pin: str | None = None
    loaded_at: float = field(default_factory=time.time)
    # Parked (``InferenceService.park``): the model is unloaded to free its memory, the
    # application stays ready and listed, and the next request loads it again.
    parked_since: float | None = None  # wall clock
    idle_since: float | None = None  # wall clock of the last request before parking
    reload_error: str | None = None  # the last failed reload; the next request tries again
    unloaded: bool = False  # the worker is closed and the backend unloaded

    @property
    def state(self) -> str:
        """ "serving", or "parked (idle since ...)" / "parked (reload failed: ...)"."""
        if self.parked_since is None:
            return "serving"
        if self.reload_error is not None:
            return f"parked (reload failed: {self.reload_error})"
        idle = self.idle_since if self.idle_since is not None else self.parked_since
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(idle))
        return f"parked (idle since {stamp})"

    @property
    def package(self) -> ModelPackage:
        return self.loaded.package

    @property
    def variant(self) -> Variant:
        return self.loaded.variant

    @property
    def selection(self) -> Any:
        return self.loaded.selection

    @property
    def attempts(self) -> list[Any]:
        return self.loaded.attempts

    @property
    def task(self) -> str:
        return self.package.meta.task

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for /status and MQTT info."""
        sel = self.selection
        return {
            "app": self.app,
            "version": self.package.version,
            "task": self.task,
            "variant": self.variant.id,
            "precision": self.variant.meta.precision,
            "format": self.variant.meta.format,
            "pin": self.pin,
            "backend": self.backend_info.backend,
            "device": self.backend_info.device,
            "detail": dict(self.backend_info.detail),
            "loaded_at": self.loaded_at,
            "state": self.state,
            "parked_since": self.parked_since,
            "queue_depth": 0 if self.unloaded else self.worker.depth,
            "inputs": [s.model_dump() for s in self.schema.inputs],
            "outputs": [s.model_dump() for s in self.schema.outputs],
            "selection": sel.to_dict() if hasattr(sel, "to_dict") else None,
            "attempts": [_attempt_dict(a) for a in self.attempts],
        }


def _attempt_dict(a: Any) -> dict[str, Any]:
    return {
        "variant": getattr(getattr(a, "variant", None), "variant", str(getattr(a, "variant", ""))),
        "backend": getattr(a, "backend", None),
        "device": getattr(a, "device", None),
        "ok": getattr(a, "ok", None),
        "error": getattr(a, "error", None),
    }


def schema_of(loaded: LoadedModel) -> IOSchema:
    """The loaded backend's own IO schema, else the package's (a backend that cannot say)."""
    meta = loaded.package.meta
    try:
        schema = loaded.backend.describe()
    except Exception:  # a backend that cannot describe itself: trust the package
        log.warning("%s: backend describe() failed; using package.toml", meta.application)
        schema = IOSchema(meta.inputs, meta.outputs)
    if not schema.inputs and meta.inputs:
        schema = IOSchema(meta.inputs, meta.outputs)
    return schema


def validate_inputs(
    app: str, schema: IOSchema, inputs: Mapping[str, np.ndarray], pictures: Sequence[str] = ()
) -> None:
    """Names, datatypes and shapes (-1 matches any size); InvalidInput says which and why.
    Inputs named in ``pictures`` still hold encoded pictures: only their presence counts."""
    expected = {s.name: s for s in schema.inputs}
    unknown = [n for n in inputs if n not in expected]
    if unknown:
        raise InvalidInput(
            f"{app}: unknown input {unknown[0]!r}; the model takes {tensor_names(schema.inputs)}"
        )
    for name, spec in expected.items():
        arr = inputs.get(name)
        if arr is None:
            raise InvalidInput(
                f"{app}: missing input {name!r}; the model takes {tensor_names(schema.inputs)}"
            )
        if name in pictures:
            continue
        datatype = to_kserve_datatype(arr.dtype)
        if datatype != spec.datatype:
            raise InvalidInput(
                f"{app}: input {name!r} has datatype {datatype}, the model expects {spec.datatype}"
            )
        if len(arr.shape) != len(spec.shape) or any(
            d != -1 and d != a for d, a in zip(spec.shape, arr.shape, strict=True)
        ):
            raise InvalidInput(
                f"{app}: input {name!r} has shape {list(arr.shape)}, the model expects "
                f"{list(spec.shape)} (-1: any size)"
            )


def tensor_names(specs: Sequence[TensorSpec]) -> str:
    """The specs as one line for an error message: ``name DTYPE [shape], ...``."""
    return ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in specs)


def batchable(schema: IOSchema) -> bool:
    """Whether every input and output has a free first (batch) dimension."""
    specs = (*schema.inputs, *schema.outputs)
    return bool(specs) and all(s.shape[:1] == (-1,) for s in specs)
