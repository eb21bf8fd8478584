"""One real inference with one runtime; run by test_mdwe.py under mdwe_exec.py.

    python mdwe_probe.py onnx|openvino MODEL.onnx
    python mdwe_probe.py llama MODEL.gguf

Prints "<runtime> ok" and exits 0 when the runtime loaded the model and produced output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def write_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((32, 10)).astype(np.float32), "w2"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["y"], axis=1),
        ],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def run(runtime: str, model: Path) -> None:
    x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    if runtime == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        y = session.run(None, {"x": x})[0]
    elif runtime == "openvino":
        import openvino as ov

        y = ov.Core().compile_model(str(model), "CPU")(x)[0]
    elif runtime == "llama":
        from llama_cpp import Llama

        llm = Llama(model_path=str(model), n_ctx=64, n_threads=1, verbose=False)
        out = llm.create_completion("hello", max_tokens=4, temperature=0.0)
        print("llama ok", repr(out["choices"][0]["text"]))
        return
    else:
        raise SystemExit(f"unknown runtime {runtime}")
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-4), y
    print(runtime, "ok", y.shape)


if __name__ == "__main__":
    if sys.argv[1] == "write-onnx":
        write_onnx(Path(sys.argv[2]))
    else:
        run(sys.argv[1], Path(sys.argv[2]))
