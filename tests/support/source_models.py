"""Small ONNX models written with onnx.helper, shaped like real exports: weights held
in Constant nodes, dynamic batch and spatial dimensions, and golden sets for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17


def _const(name: str, arr: np.ndarray) -> object:
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name))


def _save(nodes: list, inputs: list, outputs: list, path: Path, inits: list | None = None) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def conv_classifier(path: Path, seed: int = 0) -> Path:
    """image FP32 [N, 1, H, W] -> Conv 3x3 (8) -> Relu -> Conv 3x3 (16) -> Relu ->
    GlobalAveragePool -> Flatten -> MatMul + Add (10) -> Softmax -> probs [N, 10].
    Weights are Constant nodes (as torch.onnx exports often leave them); H and W are
    dynamic."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (16, 8, 3, 3)).astype(np.float32)
    w3 = rng.normal(0, 1.0, (16, 10)).astype(np.float32)
    b3 = rng.normal(0, 0.1, (10,)).astype(np.float32)
    nodes = [
        _const("w1", w1), _const("w2", w2), _const("w3", w3), _const("b3", b3),
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w3"], ["m"]),
        helper.make_node("Add", ["m", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]  # fmt: skip
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])]
    return _save(nodes, inputs, outputs, path)


def embedding_head(
    path: Path, seed: int = 1, input_name: str = "features", output_name: str = "embedding"
) -> Path:
    """features FP32 [N, 16] -> MatMul (32) + Add -> Tanh -> MatMul (8) -> embedding [N, 8]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.4, (16, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, (32,)).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.4, (32, 8)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", [input_name, "w1"], ["m1"], name="dense1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Tanh", ["a1"], ["t1"], name="tanh1"),
        helper.make_node("MatMul", ["t1", "w2"], [output_name], name="dense2"),
    ]
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 16])]
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 8])]
    return _save(nodes, inputs, outputs, path, inits)


def outlier_mlp(path: Path, seed: int = 2) -> Path:
    """features FP32 [N, 16] -> dense1 -> Relu -> dense2 -> Softmax (10): the input carries
    one feature a thousand times larger than the others, so quantizing dense1's input
    activation to 8 bits wipes out the small features that decide the class; the other
    node quantizes harmlessly. The exclusion loop must find dense1."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 1.0, (16, 64)).astype(np.float32)
    w1[0, :] = 1e-4  # the huge feature barely matters ...
    w2 = rng.normal(0, 1.0, (64, 10)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["m1"], name="dense1"),
        helper.make_node("Relu", ["m1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["logits"], name="dense2"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])]
    return _save(nodes, inputs, outputs, path, inits)


def outlier_features(n: int, seed: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, 1.0, (n, 16)).astype(np.float32)
    x[:, 0] = np.random.default_rng(seed + 1).uniform(-1000, 1000, n)  # ... but spans a lot
    return x


def images(n: int, seed: int = 4, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, size, size)).astype(np.float32)


def run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of ``path`` on ``inputs`` by a plain onnxruntime session."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, inputs)[0])


def noisy_labels(probs: np.ndarray, flip: float = 0.1, seed: int = 5) -> np.ndarray:
    """The model's own argmax with ``flip`` of the rows changed: labels the source scores
    about 1 - flip on."""
    rng = np.random.default_rng(seed)
    labels = np.argmax(probs, axis=1).astype(np.int64)
    flip_rows = rng.random(len(labels)) < flip
    labels[flip_rows] = (labels[flip_rows] + 1) % probs.shape[1]
    return labels
