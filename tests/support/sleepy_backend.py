"""A backend that hangs in inference: onnxruntime underneath, but every ``infer`` call
sleeps first. Tests put it in the real backend table (runtime.backends.registry.BACKENDS)
to show that calibration cuts a hanging candidate at its budget."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from runtime.backends.onnx import OnnxBackend

HANG_S = 30.0


class SleepyBackend(OnnxBackend):
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(HANG_S)
        return super().infer(inputs)
