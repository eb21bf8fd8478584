"""Every file a step writes is checked before it is measured: a broken graph is that
step's reason, never a package file (issue 24: onnxruntime could not load the QDQ graph
its own quantizer wrote).

- ONNX: ``onnx.checker`` on the file, then a real onnxruntime session on the CPU with the
  graph optimisations the daemon uses.
- OpenVINO IR: read and compiled for the CPU by OpenVINO.

``BrokenVariant`` carries the first line of what the checker or runtime said, which names
the node or tensor at fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def runtime_message(e: BaseException) -> str:
    """The one line of a runtime's error worth showing (see ``_first_line``)."""
    return _first_line(e)


class BrokenVariant(Exception):
    """The written file does not check or load; the message names the node or tensor."""


# onnxruntime's messages: a status prefix naming the file we already name, then at times a
# C++ source location and signature before the words that matter
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from \S+ failed:)?")
_CPP_LOCATION = re.compile(r"/\S+\.(?:h|cc|cpp):\d+ .*?\)(?: const)? (?=\S)")


def _first_line(e: BaseException) -> str:
    """One line of what a runtime said, without what says nothing to a user."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    line = _CPP_LOCATION.sub("", _ORT_PREFIX.sub("", text.splitlines()[0])).strip()
    return line[:400] or type(e).__name__


def check_onnx(path: Path) -> None:
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))  # by path: models over 2 GB are checked too
    except Exception as e:
        node = re.search(r"Bad node spec for node\. Name: (\S+)", str(e))
        where = f" (node {node.group(1)})" if node else ""
        raise BrokenVariant(f"{path.name} fails onnx.checker: {_first_line(e)}{where}") from e
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BrokenVariant(f"{path.name} does not load in onnxruntime: {_first_line(e)}") from e


def check_ir(xml_path: Path) -> None:
    import openvino as ov

    core = ov.Core()
    try:
        core.compile_model(core.read_model(str(xml_path)), "CPU")
    except Exception as e:
        raise BrokenVariant(f"{xml_path.name} does not load in OpenVINO: {_first_line(e)}") from e


def check_written(fmt: str, path: Path) -> None:
    """BrokenVariant unless the runtime that will serve ``path`` loads it."""
    if fmt == "openvino":
        check_ir(path)
    else:
        check_onnx(path)


_ONNX_BYTES = {1: ("fp32", 4), 10: ("fp16", 2), 16: ("bf16", 2), 11: ("fp64", 8),
               2: ("int8", 1), 3: ("int8", 1)}  # fmt: skip
_IR_PRECISION = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8", "u8": "int8",
                 "i4": "int4", "u4": "int4"}  # fmt: skip


def weight_bytes(fmt: str, path: Path) -> dict[str, int]:
    """Bytes of weights by the precision they are stored in, read from the written file
    (scalars, such as quantization scales, left out): what a rung is named by."""
    counts: dict[str, int] = {}
    if fmt == "openvino":
        import xml.etree.ElementTree as ET

        for layer in ET.parse(path).getroot().iter("layer"):
            data = layer.find("data")
            if layer.get("type") != "Const" or data is None:
                continue
            precision = _IR_PRECISION.get(data.get("element_type", ""))
            size = int(data.get("size", "0"))
            if precision and size > 8:
                counts[precision] = counts.get(precision, 0) + size
        return counts
    import onnx

    def add(tensor: Any) -> None:
        kind = _ONNX_BYTES.get(tensor.data_type)
        n = 1
        for d in tensor.dims:
            n *= d
        if kind and n > 1:
            counts[kind[0]] = counts.get(kind[0], 0) + n * kind[1]

    def walk(graph: Any) -> None:  # subgraphs too: an If's branches hold weights
        for init in graph.initializer:
            add(init)
        for node in graph.node:
            for attr in node.attribute:
                if node.op_type == "Constant" and attr.name == "value":
                    add(attr.t)
                elif attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)

    walk(onnx.load(str(path), load_external_data=False).graph)
    return counts


def int8_share(fmt: str, path: Path) -> float:
    """The share of the weight bytes stored as int8."""
    counts = weight_bytes(fmt, path)
    total = sum(counts.values())
    return counts.get("int8", 0) / total if total else 0.0
