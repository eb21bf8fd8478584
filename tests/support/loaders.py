"""The loader tests hand to InferenceService: real backends, the variant the test names.

In the daemon runtime.loading.loader picks the variant from the device profile; here the test
pins it (or takes the package's first), so a test says exactly what it serves.
``box_loader`` asks a real box (``make_box``) for the pin in force first, so operator pins
and governor overrides set through the change path load as they do in the daemon.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import Backend, LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.box import Box
from runtime.catalog import ModelPackage, Variant
from runtime.config import Settings
from tests.support.box import box_for


@dataclass
class Loaded:
    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Any = None
    attempts: list[Any] = field(default_factory=list)


def ort_loader(package: ModelPackage, pin: str | None) -> Loaded:
    """Opens the pinned variant (else the first) with the real backend for its format:
    onnxruntime for ONNX, llama.cpp for GGUF."""
    variant = package.variant(pin) if pin else package.variants[0]
    backend: Backend
    if variant.meta.format == "gguf":
        from runtime.backends.llama import LlamaBackend

        backend = LlamaBackend()
    else:
        backend = OnnxBackend()
    backend.load(variant, LoadOptions(intra_op_threads=1, task=package.meta.task))
    return Loaded(package, variant, backend)


def make_box(state_dir: Path, settings: Settings | None = None) -> Box:
    """A real box policy (this machine's runtimes, the test CPU profile) keeping its
    operator pins under ``state_dir``: what the change path pins and overrides."""
    from tests.support.synthetic import local_report, make_profile

    settings = settings or Settings(demo=False)
    paths = settings.paths.model_copy(update={"state_dir": state_dir})
    return box_for(settings.model_copy(update={"paths": paths}), local_report(), make_profile())


def box_loader(box: Box, load: Callable[[ModelPackage, str | None], Loaded] = ort_loader) -> Any:
    """The test loader asking ``box`` which pin is in force (operator > settings > governor)
    for a load nobody forced, as the daemon's loader does; a decision made already
    (``decided``) loads its choice."""

    def loader(package: ModelPackage, pin: str | None, decided: Any = None) -> Loaded:
        if decided is not None and decided.chosen is not None:
            pin = decided.chosen.variant.variant
        return load(package, pin or box.pin_for(package.application).variant)

    return loader


# A request that stays in flight a while: long enough to shed, park or swap meanwhile.
SLOW_S = 1.0


class SlowBackend(OnnxBackend):
    """onnxruntime that takes SLOW_S per request: a request stays in flight meanwhile."""

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(SLOW_S)
        return super().infer(inputs)


def slow_loader(package: ModelPackage, pin: str | None) -> Loaded:
    variant = package.variant(pin) if pin else package.variants[0]
    backend = SlowBackend()
    backend.load(variant, LoadOptions(intra_op_threads=1, task=package.meta.task))
    return Loaded(package, variant, backend)
