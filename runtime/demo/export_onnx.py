"""The demo MLP as an ONNX graph, built node by node with the onnx helper API.

pixels FP32 [batch, 64] (raw 0..16) -> Mul(1/16) -> (MatMul -> Add -> Relu) per hidden
layer -> MatMul -> Add -> Softmax -> probabilities FP32 [batch, 10].
MatMul + Add rather than Gemm because onnxruntime's quantizer and OpenVINO's converter
both handle that pair best; the arithmetic is the same as sklearn's ``predict_proba``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.demo.data import N_CLASSES, N_FEATURES, PIXEL_MAX

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
OPSET = 17
IR_VERSION = 8  # old enough for every onnxruntime and OpenVINO release we support


def build_model(
    layers: list[tuple[np.ndarray, np.ndarray]], name: str = "part-id-reader"
) -> object:
    """An onnx.ModelProto for an MLP given as (weights [in, out], bias [out]) per layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([1.0 / PIXEL_MAX], dtype=np.float32), "scale")]
    nodes = [helper.make_node("Mul", [INPUT_NAME, "scale"], ["x0"], name="normalise")]
    current = "x0"
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w, dtype=np.float32), f"w{i}"))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b, dtype=np.float32), f"b{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"mm{i}"], name=f"matmul{i}"))
        out = "logits" if last else f"z{i}"
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out], name=f"add{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"h{i}"], name=f"relu{i}"))
            current = f"h{i}"
    nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1, name="softmax"))
    graph = helper.make_graph(
        nodes,
        name.replace("-", "_"),
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", N_CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="headframe-demo",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def save_model(layers: list[tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Build, check and write the graph to ``path``."""
    import onnx

    model = build_model(layers)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))  # type: ignore[arg-type]
    return path
