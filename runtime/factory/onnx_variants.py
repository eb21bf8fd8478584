"""ONNX variants from the prepared fp32 graph (runtime/factory/onnx_prepare.py), each
written by the runtime's own tool:

- ``make_fp16``: weights and compute in fp16, inputs and outputs kept fp32, the operator
  types of ``keep_float`` left in fp32 (the fp16 search in runtime/factory/search.py
  measures which ones the model needs: a BatchNormalization or a Resize computed in fp16
  can wipe out a detector's output).
- ``make_int8_dynamic``: onnxruntime ``quantize_dynamic`` (weights int8, activations
  quantized at run time).
- ``make_int8_static``: QDQ by ``quantize_static``, calibrated at the golden shape on the
  calibration rows, per-channel weight scales where the opset allows them, with a scheme
  for the x86 saturation caveat (below) and a list of nodes kept in float.

The x86 caveat: without VNNI, onnxruntime multiplies uint8 activations by int8 weights
with VPMADDUBSW, whose 16-bit intermediate saturates when two products add past 32767.
``reduce-range`` (the default) stores weights in 7 bits ([-64, 64]), so a pair sums to
at most 2 x 255 x 64 = 32640 < 32767 and no CPU saturates: the quality measured here
holds everywhere. ``u8s8`` keeps 8-bit weights (more accurate on VNNI CPUs, lossy on
AVX2-only ones); ``s8s8`` quantizes activations as int8 too. The build report records
the scheme of each int8 variant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog.golden import RowLayout
from runtime.factory.onnx_prepare import prepare as prepare  # the demo factory imports it here

log = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
DYNAMIC_OPS = ["MatMul", "Attention", "LSTM", "GRU"]
CALIBRATION_ROWS = 256
CALIBRATION_BATCH = 16


def quantizable_nodes(path: Path) -> list[str]:
    """Names of the nodes a static quantizer turns into integer arithmetic."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS]


def float_op_types(path: Path) -> list[str]:
    """The operator types of ``path`` that compute in float, in order of first use: what
    the fp16 search may keep in fp32."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    skip = {"Constant", "Shape", "Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze",
            "Flatten", "Transpose", "Concat", "Slice", "Gather", "Split"}  # fmt: skip
    seen: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type not in skip and node.domain in ("", "ai.onnx"):
            seen.setdefault(node.op_type, None)
    return list(seen)


def make_fp16(src: Path, dst: Path, keep_float: Sequence[str] = ()) -> Path:
    """fp16 weights and compute; the operator types in ``keep_float`` stay fp32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = convert_float_to_float16(
        onnx.load(str(src)),
        keep_io_types=True,
        op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *keep_float}),
    )
    # The converter appends the io Casts at the end of the node list: onnxruntime does
    # not mind, onnx.checker (and so `models add`, inspection) rejects the order.
    _sort_nodes(model.graph)
    onnx.save(model, str(dst))
    return dst


def _sort_nodes(graph: Any) -> None:
    """Topologically sort ``graph.node`` in place (stable: ready nodes keep their order)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:  # a cycle or an input from an outer scope: leave the rest as it was
            ordered.extend(pending)
            break
        for n in ready:
            ordered.append(n)
            known.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _count_quantized(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")
    return sum(1 for n in model.graph.node if n.op_type in ops or n.domain == "com.microsoft")


def make_int8_dynamic(src: Path, dst: Path, scheme: str) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=DYNAMIC_OPS,
        per_channel=False,
        reduce_range=scheme == "reduce-range",
    )
    if not _count_quantized(dst):
        raise ValueError(f"no {'/'.join(DYNAMIC_OPS)} node to quantize dynamically")
    return dst


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over golden or calibration rows, as
    requests the model takes (runtime/catalog/golden.py RowLayout): calibration runs at
    the golden shape, whatever the model's dynamic axes allow."""

    def __init__(self, inputs: Mapping[str, np.ndarray], batch: int, layout: RowLayout) -> None:
        self._inputs = {k: v[:CALIBRATION_ROWS] for k, v in inputs.items()}
        self._batch = batch
        self._layout = layout
        self._it = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        names = list(self._inputs)
        for request in self._layout.requests(self._inputs, names, self._batch):
            yield {k: np.ascontiguousarray(v) for k, v in request.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()


def make_int8_static(
    src: Path,
    dst: Path,
    calibration: Mapping[str, np.ndarray],
    *,
    scheme: str,
    exclude: Sequence[str] = (),
    batch: int = CALIBRATION_BATCH,
    per_channel: bool = True,
    layout: RowLayout | None = None,
    calibration_cache: Path | None = None,
) -> Path:
    """A QDQ int8 copy of ``src`` calibrated (MinMax) on ``calibration`` rows, per-channel
    weights unless ``per_channel`` is False (an opset below 13), the nodes in ``exclude``
    kept in float. ``calibration_cache``: the tensor ranges are kept in this file and
    reused by the next call (onnxruntime 1.32+; older ones calibrate every time), which
    makes a search's trials cost a rewrite of the graph instead of a calibration."""
    import inspect

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cache: dict[str, Any] = {}
    if calibration_cache is not None and "calibration_cache_path" in str(
        inspect.signature(quantize_static)
    ):
        cache["calibration_cache_path"] = str(calibration_cache)
    act = QuantType.QInt8 if scheme == "s8s8" else QuantType.QUInt8
    root = logging.getLogger()
    quiet = _DropAdvice()
    root.addFilter(quiet)  # the pre-processing advice: prepare() already did it
    try:
        quantize_static(
            str(src),
            str(dst),
            _Reader(calibration, batch, layout or RowLayout()),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=per_channel,
            reduce_range=scheme == "reduce-range",
            activation_type=act,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": scheme == "s8s8"},
            **cache,
        )
    finally:
        root.removeFilter(quiet)
    return dst


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()
