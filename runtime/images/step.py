"""Which inputs of a request are pictures, and the step that turns them into tensors.

The service calls ``image_step`` on the event loop (cheap: dtype and name checks only);
the ``ImageStep`` it returns runs on the model's worker thread, before the backend, so a
request's decoding counts against the model's bounded queue like its inference does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from runtime.catalog import TensorSpec
from runtime.catalog.image_contract import ImageInput, mismatch
from runtime.errors import InvalidImage, InvalidInput, MetadataError, NoImageContract
from runtime.images.decode import DecodeLimits
from runtime.images.preprocess import picture_to_tensor


class ImageStep:
    """Turns a request's picture inputs into the tensors the model takes.

    ``names`` are the inputs that carry pictures in this request (BYTES arrays, one
    picture per element); the others pass through untouched. Called on the model's
    worker thread."""

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

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(inputs)
        for name in self.names:
            contract = self.contracts[name]
            tensors = []
            for i, element in enumerate(np.asarray(inputs[name], dtype=object).ravel()):
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
    return ImageStep(app, contracts or {}, names) if names else None


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
