"""ONNX variants from one fp32 ONNX source, each written by the runtime's own tool.

- ``prepare``: what real exported models need before any quantizer sees them: weights
  held in ``Constant`` nodes lifted into initializers, every node named (the exclusion
  loop addresses nodes by name), then onnxruntime's quantization pre-processing
  (symbolic and ONNX shape inference). That prepared graph is the ``fp32`` variant.
- ``make_fp16``: weights and compute in fp16, inputs and outputs kept fp32.
- ``make_int8_dynamic``: onnxruntime ``quantize_dynamic`` (weights int8, activations
  quantized at run time).
- ``make_int8_static``: QDQ by ``quantize_static``, calibrated, with a scheme for the
  x86 saturation caveat (below) and a list of nodes kept in float.

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
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.factory.spec import BuildInputError

log = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
DYNAMIC_OPS = ["MatMul", "Attention", "LSTM", "GRU"]
CALIBRATION_ROWS = 256
CALIBRATION_BATCH = 16


def load_model(path: Path) -> Any:
    """The ModelProto of ``path``; BuildInputError naming the file when it is not ONNX."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except FileNotFoundError as e:
        raise BuildInputError(f"{path}: file not found") from e
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BuildInputError(f"{path}: not a readable ONNX model: {first}") from e
    if not model.graph.node:
        raise BuildInputError(f"{path}: not a readable ONNX model: the graph has no nodes")
    return model


def _lift_constants(model: Any) -> int:
    """Move tensor-valued ``Constant`` nodes into initializers (quantizers look for
    weights there); returns how many moved."""
    from onnx import numpy_helper

    keep, lifted = [], 0
    for node in model.graph.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and "value" in attr and len(node.output) == 1:
            arr = numpy_helper.to_array(attr["value"].t)
            model.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            lifted += 1
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return lifted


def _name_nodes(model: Any) -> None:
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type.lower()}_{i}"
        seen.add(node.name)


def prepare(src: Path, dst: Path) -> list[str]:
    """Write the prepared fp32 graph of ``src`` to ``dst``; returns notes on what was done
    (each pre-processing step that failed is a note, not an error)."""
    import onnx

    model = load_model(src)
    notes = []
    if lifted := _lift_constants(model):
        notes.append(f"{lifted} Constant nodes lifted into initializers")
    _name_nodes(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    raw = dst.with_name(".raw-" + dst.name)
    onnx.save(model, str(raw))
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        try:
            quant_pre_process(str(raw), str(dst), skip_optimization=True)
        except Exception as e:  # symbolic inference fails on some op mixes: ONNX's alone
            notes.append(f"symbolic shape inference skipped: {str(e).splitlines()[0][:120]}")
            quant_pre_process(str(raw), str(dst), skip_optimization=True, skip_symbolic_shape=True)
    except Exception as e:
        notes.append(f"shape inference skipped: {str(e).splitlines()[0][:120]}")
        shutil.copyfile(raw, dst)
    finally:
        raw.unlink(missing_ok=True)
    return notes


def quantizable_nodes(path: Path) -> list[str]:
    """Names of the nodes a static quantizer turns into integer arithmetic."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS]


def make_fp16(src: Path, dst: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
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
    """onnxruntime's CalibrationDataReader protocol over golden or calibration rows."""

    def __init__(self, inputs: Mapping[str, np.ndarray], batch: int) -> None:
        self._inputs = inputs
        self._batch = batch
        self._it = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        n = min(CALIBRATION_ROWS, len(next(iter(self._inputs.values()))))
        for i in range(0, n, self._batch):
            yield {k: np.ascontiguousarray(v[i : i + self._batch]) for k, v in self._inputs.items()}

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
) -> Path:
    """A QDQ int8 copy of ``src`` calibrated (MinMax) on ``calibration`` rows, per-channel
    weights, the nodes in ``exclude`` kept in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    act = QuantType.QInt8 if scheme == "s8s8" else QuantType.QUInt8
    root = logging.getLogger()
    quiet = _DropAdvice()
    root.addFilter(quiet)  # the pre-processing advice: prepare() already did it
    try:
        quantize_static(
            str(src),
            str(dst),
            _Reader(calibration, batch),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            reduce_range=scheme == "reduce-range",
            activation_type=act,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": scheme == "s8s8"},
        )
    finally:
        root.removeFilter(quiet)
    return dst


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()
