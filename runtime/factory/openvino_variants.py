"""OpenVINO IR variants of an ONNX source.

- ``make_ir_fp16``: ``openvino.convert_model`` + ``save_model(compress_to_fp16=True)``:
  fp16 constants (half the .bin), inputs and outputs stay as the model declares them.
- ``make_ir_int8``: NNCF post-training quantization with accuracy control
  (``nncf.quantize_with_accuracy_control``): NNCF quantizes, then keeps in float the
  layers that cost the most until the drop, measured by our own metric on the golden
  rows, is within ``max_drop_bp``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

SUBSET = 300  # rows NNCF calibrates on (its own default)


def make_ir_fp16(onnx_path: Path, xml_path: Path) -> Path:
    """Write ``xml_path`` (and the .bin beside it)."""
    import openvino as ov

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=True)
    return xml_path


def make_ir_int8(
    onnx_path: Path,
    xml_path: Path,
    inputs: Mapping[str, np.ndarray],
    *,
    quality: Callable[[np.ndarray, np.ndarray], int],
    max_drop_bp: int,
) -> Path:
    """An int8 IR quantized by NNCF on the golden ``inputs``, one row per item.

    ``quality(outputs, rows)`` scores the first output of the golden rows ``rows`` (bp);
    NNCF receives it as its validation function (it also scores subsets when it ranks
    layers), so its accuracy control optimises the package's own metric."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)  # its INFO lines would tear the progress table
    model = ov.convert_model(str(onnx_path))
    n = len(next(iter(inputs.values())))

    def row(i: int) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v[i : i + 1]) for k, v in inputs.items()}

    dataset = nncf.Dataset(list(range(n)), row)

    def validate(compiled: Any, data: Any) -> float:
        request = compiled.create_infer_request()
        output = compiled.outputs[0]
        idx = np.asarray(list(data), dtype=np.int64)
        outs = [np.array(request.infer(row(int(i)))[output], copy=True) for i in idx]
        return quality(np.concatenate(outs, axis=0), idx) / 10_000

    # NNCF draws its own progress bars on stdout, where --json prints the result.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = _quantize(nncf, model, dataset, n, validate, max_drop_bp)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    return xml_path


def _quantize(nncf: Any, model: Any, dataset: Any, n: int, validate: Any, max_drop_bp: int) -> Any:
    return nncf.quantize_with_accuracy_control(
        model,
        calibration_dataset=dataset,
        validation_dataset=nncf.Dataset(list(range(n))),
        validation_fn=validate,
        max_drop=max_drop_bp / 10_000,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=min(SUBSET, n),
    )
