"""Backends that misbehave in inference, onnxruntime underneath: ``SleepyBackend`` sleeps
in every ``infer`` (a hang), ``SlowBackend`` takes ``SLOW_S`` a call (a model slower than
its calibration budget), ``CrashingBackend`` raises. Tests put them in the real backend
table (runtime.backend_table.BACKENDS) to show that calibration cuts a hanging
candidate at its budget and records a crashing one as failed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pytest

from runtime.backend_table import BACKENDS
from runtime.backends.onnx import OnnxBackend

HANG_S = 30.0
SLOW_S = 0.4


class SleepyBackend(OnnxBackend):
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(HANG_S)
        return super().infer(inputs)


class SlowBackend(OnnxBackend):
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(SLOW_S)
        return super().infer(inputs)


class CrashingBackend(OnnxBackend):
    """Loads, then fails every inference the way a broken runtime kernel does."""

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("kernel crashed")


def serve_onnx_with(monkeypatch: pytest.MonkeyPatch, cls: str) -> None:
    """Make the backend registry's own "onnx" entry name ``cls`` of this module for the
    test (the registry's table is the seam; nothing of ours is mocked)."""
    monkeypatch.setitem(BACKENDS, "onnx", replace(BACKENDS["onnx"], module=__name__, cls=cls))
