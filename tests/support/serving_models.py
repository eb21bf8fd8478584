"""Real ONNX model packages for the serving tests, written into a store the test owns.

``write_linear_package`` builds a softmax(x @ W + b) classifier shaped like the demo
(input "pixels" FP32 [-1, 64], output "probabilities" FP32 [-1, 10]) with one variant
per entry of ``variants`` (their weights differ, so a swap is visible in the output).
``write_mixed_package`` echoes FP16, BYTES, BOOL and INT64 tensors, for datatype tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import orjson
from onnx import TensorProto, helper, numpy_helper

from runtime.catalog import ModelPackage, load_package

OPSET = 17


def _save(model: onnx.ModelProto, path: Path) -> None:
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


def linear_model(path: Path, *, seed: int = 0, features: int = 64, classes: int = 10) -> Path:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.1, (features, classes)).astype(np.float32)
    b = rng.normal(0, 0.1, (classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["pixels", "W"], ["logits0"]),
            helper.make_node("Add", ["logits0", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)
    return path


def mixed_model(path: Path) -> Path:
    ins = [
        ("half", TensorProto.FLOAT16, ["batch", 3]),
        ("text", TensorProto.STRING, ["batch"]),
        ("flag", TensorProto.BOOL, ["batch"]),
        ("count", TensorProto.INT64, ["batch", 2]),
    ]
    graph = helper.make_graph(
        [helper.make_node("Identity", [n], [f"{n}_out"]) for n, _, _ in ins],
        "mixed",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in ins],
        [helper.make_tensor_value_info(f"{n}_out", t, s) for n, t, s in ins],
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_variant(vdir: Path, variant: str, precision: str, size_rank: int) -> None:
    model = vdir / "model.onnx"
    nbytes = model.stat().st_size
    (vdir / "variant.toml").write_text(
        f'variant = "{variant}"\nformat = "onnx"\nprecision = "{precision}"\n'
        f'entrypoint = "model.onnx"\nbytes = {nbytes}\n'
        f"peak_memory_bytes = {nbytes * 4 + size_rank}\n"
        f'device_classes = ["cpu"]\naccuracy_bp = 9000\nlatency_us = 50\n'
        f'[[files]]\npath = "model.onnx"\nsha256 = "{_sha(model)}"\nsize = {nbytes}\n'
    )


def write_package_toml(
    pdir: Path, app: str, version: str, inputs: str, outputs: str, description: str = "test model"
) -> None:
    """A tensor package.toml (floor 5000 bp, test lineage) with TOML ``inputs``/``outputs``."""
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / "package.toml").write_text(
        f'application = "{app}"\nversion = "{version}"\ntask = "tensor"\n'
        f'description = "{description}"\naccuracy_floor_bp = 5000\n'
        f"inputs = [{inputs}]\noutputs = [{outputs}]\n"
        f'[lineage]\nfoundation = "test"\nsector = "test"\napplication = "{app}"\n'
    )


def write_linear_package(
    store: Path,
    app: str = "part-id-reader",
    version: str = "1.0.0",
    variants: tuple[str, ...] = ("small", "large"),
    *,
    seed: int = 0,
) -> ModelPackage:
    """A package under ``store/app/version`` whose variants differ in weights (seeded from
    ``seed``: give two versions different seeds and every (version, variant) differs)."""
    pdir = store / app / version
    write_package_toml(
        pdir,
        app,
        version,
        '{name = "pixels", datatype = "FP32", shape = [-1, 64]}',
        '{name = "probabilities", datatype = "FP32", shape = [-1, 10]}',
    )
    for rank, variant in enumerate(variants):
        vdir = pdir / "variants" / variant
        linear_model(vdir / "model.onnx", seed=seed + rank)
        _write_variant(vdir, variant, "fp32", rank)
    return load_package(pdir)


def write_mixed_package(store: Path, app: str = "echo", version: str = "1") -> ModelPackage:
    pdir = store / app / version
    specs = [("half", "FP16", "[-1, 3]"), ("text", "BYTES", "[-1]"), ("flag", "BOOL", "[-1]"),
             ("count", "INT64", "[-1, 2]")]  # fmt: skip
    ins = ", ".join(f'{{name = "{n}", datatype = "{d}", shape = {s}}}' for n, d, s in specs)
    outs = ", ".join(f'{{name = "{n}_out", datatype = "{d}", shape = {s}}}' for n, d, s in specs)
    write_package_toml(pdir, app, version, ins, outs)
    vdir = pdir / "variants" / "base"
    mixed_model(vdir / "model.onnx")
    _write_variant(vdir, "base", "fp32", 0)
    return load_package(pdir)


def kserve_body(rows: int = 2) -> bytes:
    """A KServe v2 JSON infer body for the linear package: ``rows`` rows of 64 pixels."""
    x = np.random.default_rng(rows).uniform(0, 16, (rows, 64)).astype(np.float32)
    inputs = [{"name": "pixels", "datatype": "FP32", "shape": [rows, 64],
               "data": x.reshape(-1).tolist()}]  # fmt: skip
    return orjson.dumps({"inputs": inputs})
