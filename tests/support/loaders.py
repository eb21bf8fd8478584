"""The loader tests hand to InferenceService: real backends, the variant the test names.

In the daemon runtime.loading.loader picks the variant from the device profile; here the test
pins it (or takes the package's first), so a test says exactly what it serves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.backends.base import Backend, LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.catalog import ModelPackage, Variant


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
