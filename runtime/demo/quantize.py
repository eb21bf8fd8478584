"""int8 by onnxruntime's static quantization (QDQ, calibrated on training pixels).

Weights become int8 and activations uint8 around every MatMul; the normalisation, the
bias adds and the softmax stay float, so the probabilities keep their precision while
the file shrinks by about four.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from runtime.demo.export_onnx import INPUT_NAME

CALIBRATION_SAMPLES = 256


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol: one single-row batch at a time."""

    def __init__(self, pixels: np.ndarray) -> None:
        self._rows = iter(np.asarray(pixels, dtype=np.float32))

    def get_next(self) -> dict[str, np.ndarray] | None:
        row = next(self._rows, None)
        return None if row is None else {INPUT_NAME: row[None, :]}

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        pass


def quantize_int8(src: Path, dst: Path, calibration_pixels: np.ndarray) -> Path:
    """Write an int8 QDQ copy of the fp32 ONNX model ``src`` to ``dst``."""
    from onnxruntime.quantization import quantize_static

    dst.parent.mkdir(parents=True, exist_ok=True)
    # The quantizer advises "pre-processing" on the root logger; our graph is already the
    # plain MatMul/Add chain that pre-processing would produce, so the advice is noise.
    root = logging.getLogger()
    quiet = _DropAdvice()
    root.addFilter(quiet)
    try:
        _quantize(quantize_static, src, dst, calibration_pixels)
    finally:
        root.removeFilter(quiet)
    return dst


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _quantize(quantize_static: Any, src: Path, dst: Path, calibration_pixels: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    quantize_static(
        str(src),
        str(dst),
        _Calibration(calibration_pixels[:CALIBRATION_SAMPLES]),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
