"""OpenVINO IR variants of an ONNX source.

- ``make_ir_fp16``: ``openvino.convert_model`` + ``save_model(compress_to_fp16=True)``:
  fp16 constants (half the .bin), inputs and outputs stay as the model declares them.
- ``make_ir_int8``: NNCF post-training quantization on the golden rows, in one of two
  modes. ``ptq``: ``nncf.quantize`` (minutes at most). ``accuracy-control``:
  ``nncf.quantize_with_accuracy_control``, which quantizes, then keeps in float the layers
  that cost the most until the drop, measured by our own metric on the golden rows, is
  within ``max_drop_bp``; its ranking can run for many minutes on a real detector, so the
  build runs it in a child process with the time that is left (runtime/factory/child.py)
  and keeps the ``ptq`` result when it is cut.

The build names the result by what was written (runtime/factory/checks.py
``weight_bytes``): accuracy control can keep every layer in float, and such a file is not
an int8 rung.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog.golden import RowLayout

SUBSET = 300  # rows NNCF calibrates on (its own default)
MODES = ("ptq", "accuracy-control")


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
    mode: str = "accuracy-control",
    layout: RowLayout | None = None,
    output: str | None = None,
) -> Path:
    """An int8 IR quantized by NNCF on the golden ``inputs`` (one request per item, as
    ``layout`` makes them).

    ``quality(outputs, rows)`` scores the named (else first) output of the golden rows
    ``rows`` (bp); accuracy control receives it as its validation function (it also
    scores subsets when it ranks layers), so it optimises the package's own metric."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)  # its INFO lines would tear the progress table
    layout = layout or RowLayout()
    model = ov.convert_model(str(onnx_path))
    names = list(inputs)
    n = len(next(iter(inputs.values())))
    step = layout.rows_per_request(1)

    def row(i: int) -> dict[str, np.ndarray]:
        return layout.request(inputs, names, range(i, min(n, i + step)))

    dataset = nncf.Dataset(list(range(n)), row)

    def validate(compiled: Any, data: Any) -> float:
        request = compiled.create_infer_request()
        port = next((p for p in compiled.outputs if output in p.get_names()), compiled.outputs[0])
        idx = np.asarray(list(data), dtype=np.int64)
        outs = [np.array(request.infer(row(int(i)))[port], copy=True) for i in idx]
        return quality(np.concatenate(outs, axis=0), idx) / 10_000

    # NNCF draws its own progress bars on stdout, where --json prints the result.
    with contextlib.redirect_stdout(sys.stderr):
        if mode == "ptq":
            quantized = nncf.quantize(model, dataset, subset_size=min(SUBSET, n))
        else:
            quantized = _with_accuracy_control(nncf, model, dataset, n, validate, max_drop_bp)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    return xml_path


def _with_accuracy_control(
    nncf: Any, model: Any, dataset: Any, n: int, validate: Any, max_drop_bp: int
) -> Any:
    return nncf.quantize_with_accuracy_control(
        model,
        calibration_dataset=dataset,
        validation_dataset=nncf.Dataset(list(range(n))),
        validation_fn=validate,
        max_drop=max_drop_bp / 10_000,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=min(SUBSET, n),
    )
