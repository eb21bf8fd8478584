"""Which inputs of a request are pictures, and the step that turns them into tensors.

The service calls ``image_step`` on the event loop (cheap: dtype and name checks only);
the ``ImageStep`` it returns runs on the model's worker thread, before the backend, so a
request's decoding counts against the model's bounded queue like its inference does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from runtime.catalog import TensorSpec
from runtime.catalog.image_contract import ImageInput, mismatch
from runtime.errors import (
    ImageTooLarge,
    InvalidImage,
    InvalidInput,
    MetadataError,
    NoImageContract,
)
from runtime.images.decode import DecodeLimits
from runtime.images.preprocess import picture_to_tensor


class ImageStep:
    """Turns a request's picture inputs into the tensors the model takes.

    ``names`` are the inputs that carry pictures in this request (BYTES arrays, one
    picture per element); the others pass through untouched. Called on the model's
    worker thread. What one request may cost is bounded by ``limits``: at most
    ``max_pictures`` pictures (checked before the first is decoded), and decoding stops
    once ``max_decode_s`` have passed, or at the next picture once ``abandon()`` says the
    caller has gone (its 504, its disconnect): a request nobody waits for must not keep
    the worker from the next one."""

    def __init__(
        self,
        app: str,
        contracts: Mapping[str, ImageInput],
        names: list[str],
        limits: DecodeLimits = DecodeLimits(),
    ) -> None:
        self.app = app
        self.contracts = contracts
        self.names = names
        self.limits = limits
        self._gone = threading.Event()

    def abandon(self) -> None:
        """The caller has gone: stop before the next picture (thread-safe)."""
        self._gone.set()

    def check_count(self, inputs: Mapping[str, np.ndarray]) -> None:
        """InvalidInput when the request holds more pictures than ``max_pictures``."""
        count = sum(int(np.asarray(inputs[n], dtype=object).size) for n in self.names)
        if count > self.limits.max_pictures:
            raise InvalidInput(
                f"{self.app}: the request holds {count} pictures; at most "
                f"{self.limits.max_pictures} per request"
            )

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_count(inputs)
        deadline = time.monotonic() + self.limits.max_decode_s
        out = dict(inputs)
        for name in self.names:
            contract = self.contracts[name]
            tensors = []
            for i, element in enumerate(np.asarray(inputs[name], dtype=object).ravel()):
                self._check_time(deadline)
                if not isinstance(element, bytes | bytearray):
                    raise InvalidInput(f"{self.app}: input {name!r} picture {i} is not bytes")
                try:
                    tensors.append(picture_to_tensor(bytes(element), contract, self.limits))
                except InvalidImage as e:
                    raise type(e)(f"{self.app}: input {name!r} picture {i}: {e.message}") from None
            if not tensors:
                raise InvalidInput(f"{self.app}: input {name!r} holds no pictures")
            out[name] = np.stack(tensors)
        return out

    def _check_time(self, deadline: float) -> None:
        if self._gone.is_set():
            raise InvalidInput(f"{self.app}: the caller has gone; its pictures were left")
        if time.monotonic() > deadline:
            raise ImageTooLarge(
                f"{self.app}: decoding the pictures took longer than "
                f"{self.limits.max_decode_s:g} s (the limit per request): send fewer or "
                "smaller pictures"
            )


def image_step(
    app: str,
    contracts: Mapping[str, ImageInput] | None,
    specs: Sequence[TensorSpec],
    inputs: Mapping[str, np.ndarray],
) -> ImageStep | None:
    """The step for the inputs of ``inputs`` that carry pictures, or None when none do.

    An input carries pictures when it arrives as BYTES but the model takes another
    datatype there; without a contract for it that is NoImageContract, said plainly."""
    takes = {s.name: s for s in specs}
    names = []
    for name, arr in inputs.items():
        spec = takes.get(name)
        if spec is None or spec.datatype == "BYTES" or arr.dtype != object:
            continue
        if not contracts or name not in contracts:
            raise NoImageContract(
                f"{app}: input {name!r} got BYTES (a picture?), but the package has no image "
                f"contract for it: send {spec.datatype} {list(spec.shape)}, or declare "
                f"[images.{name}] in package.toml"
            )
        names.append(name)
    if not names:
        return None
    step = ImageStep(app, contracts or {}, names)
    step.check_count(inputs)  # cheap, and before the request takes a place in the queue
    return step


def check_contracts(
    contracts: Mapping[str, ImageInput] | None, specs: Sequence[TensorSpec], where: Path
) -> None:
    """Image contracts against the inputs the loaded model really takes (the service calls
    this at load): MetadataError naming the field, so a wrong contract fails the load
    instead of giving wrong answers."""
    takes = {s.name: s for s in specs}
    for name, contract in (contracts or {}).items():
        spec = takes.get(name)
        problem = (
            f"images.{name}: the model has no input {name!r}"
            if spec is None
            else mismatch(name, contract, spec.datatype, spec.shape)
        )
        if problem:
            raise MetadataError(f"{where}: {problem}")
