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
- ``make_int8_weights``: weights stored int8 (per-channel) with a DequantizeLinear in
  front, compute in float, subgraphs included: the int8 rung of a model whose layers the
  static quantizer cannot reach.

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


class NothingToQuantize(ValueError):
    """The quantizer found no node of the operator types it quantizes."""


def make_int8_dynamic(
    src: Path,
    dst: Path,
    scheme: str,
    *,
    ops: Sequence[str] = DYNAMIC_OPS,
    per_channel: bool = False,
) -> Path:
    """``ops`` and ``per_channel``: a transformer encoder (runtime/factory/encoder_build.py)
    quantizes its embedding table too (Gather: half its bytes) with a scale per channel,
    which keeps 7-bit weights (reduce-range) within a cosine of 0.99 of the source."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(ops),
        per_channel=per_channel,
        reduce_range=scheme == "reduce-range",
    )
    if not _count_quantized(dst):
        raise NothingToQuantize("nothing to quantize dynamically")
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
            yield {k: np.require(v, requirements="C") for k, v in request.items()}  # keeps 0-d

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


# --- int8 weights only --------------------------------------------------------------------

# op -> (weight input, channel axis) pairs; Gemm's axis follows transB
WEIGHT_OPS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "Conv": ((1, 0),), "ConvTranspose": ((1, 1),), "MatMul": ((1, -1),), "Gemm": ((1, None),),
    "LSTM": ((1, 1), (2, 1)), "GRU": ((1, 1), (2, 1)), "RNN": ((1, 1), (2, 1)),
}  # fmt: skip


def subgraph_ops(path: Path, ops: Sequence[str]) -> dict[str, int]:
    """How many nodes of ``ops`` sit inside subgraphs (If, Loop, Scan), by the name of the
    node that holds them: what quantizers that work on the main graph cannot reach."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    found: dict[str, int] = {}

    def walk(graph: Any, holder: str | None) -> None:
        for node in graph.node:
            if holder is not None and node.op_type in ops:
                found[holder] = found.get(holder, 0) + 1
            for attr in node.attribute:
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                    walk(sub, holder or f"{node.op_type} {node.name!r}")

    walk(model.graph, None)
    return found


def _quantize_weight(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 along ``axis`` (one scale per output channel)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = np.maximum(np.abs(moved).max(axis=1), 1e-12) / 127.0
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _weight_axis(node: Any, index: int, w: np.ndarray) -> int | None:
    axis = dict(WEIGHT_OPS[node.op_type])[index]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        axis = 0 if trans_b else 1
    if w.ndim < 2 or w.dtype != np.float32:
        return None
    return axis % w.ndim if axis is not None else None


def make_int8_weights(src: Path, dst: Path) -> Path:
    """Weights of Conv/ConvTranspose/MatMul/Gemm/LSTM/GRU/RNN stored as int8 with
    per-channel scales and a DequantizeLinear in front of each, in the main graph and in
    every subgraph; the compute stays float. For graphs the static quantizer cannot reach
    (a model whose layers sit in the branches of an If, as Silero VAD's do), and a rung a
    quarter of the size of fp32 either way. Needs opset 13 (DequantizeLinear's axis)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    count = iter(range(1 << 30))

    def rewrite(graph: Any) -> int:
        inits = {t.name: t for t in graph.initializer}
        consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
        done, new_nodes = 0, []
        users: dict[str, tuple[Any, int]] = {}
        for n in graph.node:
            for index, _ in WEIGHT_OPS.get(n.op_type, ()):
                if len(n.input) > index and n.input[index]:
                    users.setdefault(n.input[index], (n, index))
        for name in sorted(users):
            source = inits.get(name)
            tensor = source if source is not None else _const_tensor(consts.get(name))
            if tensor is None:
                continue
            w = numpy_helper.to_array(tensor)
            axis = _weight_axis(users[name][0], users[name][1], w)
            if axis is None:
                continue
            q, scale = _quantize_weight(w, axis)
            i = next(count)
            qname, sname, zname = f"{name}_int8_{i}", f"{name}_scale_{i}", f"{name}_zero_{i}"
            extra = [
                numpy_helper.from_array(q, qname),
                numpy_helper.from_array(scale, sname),
                numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), zname),
            ]
            if source is not None:
                graph.initializer.remove(source)
                graph.initializer.extend(extra)
            else:
                graph.node.remove(consts[name])
                new_nodes += [helper.make_node("Constant", [], [t.name], value=t) for t in extra]
            dq = helper.make_node("DequantizeLinear", [qname, sname, zname], [name],
                                  name=f"{name}_dequantize_{i}", axis=axis)  # fmt: skip
            new_nodes.append(dq)
            done += 1
        for node in reversed(new_nodes):  # ahead of every consumer
            graph.node.insert(0, node)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    done += rewrite(attr.g)
        return done

    if not rewrite(model.graph):
        raise NothingToQuantize(f"no {'/'.join(WEIGHT_OPS)} weight to store as int8")
    onnx.save(model, str(dst))
    return dst


def _const_tensor(node: Any) -> Any:
    if node is None:
        return None
    return next((a.t for a in node.attribute if a.name == "value" and a.t.dims), None)
