"""A real ONNX package for the stream tests: ``peak`` = max |x| over a window, so a test
can compute what every window's result must be from the samples it sent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.catalog import ModelPackage, load_package
from tests.support.serving_models import write_package_toml


def peak_model(path: Path, window: int) -> Path:
    # ReduceMax takes its axes as an input from opset 18 on.
    graph = helper.make_graph(
        [
            helper.make_node("Abs", ["samples"], ["magnitude"]),
            helper.make_node("ReduceMax", ["magnitude", "axes"], ["peak"], keepdims=1),
        ],
        "peak",
        [helper.make_tensor_value_info("samples", TensorProto.FLOAT, ["batch", window])],
        [helper.make_tensor_value_info("peak", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def write_peak_package(store: Path, app: str = "pump-vibration", window: int = 16) -> ModelPackage:
    pdir = store / app / "1.0.0"
    write_package_toml(
        pdir, app, "1.0.0",
        f'{{name = "samples", datatype = "FP32", shape = [-1, {window}]}}',
        '{name = "peak", datatype = "FP32", shape = [-1, 1]}',
        description="peak magnitude of a vibration window",
    )  # fmt: skip
    vdir = pdir / "variants" / "fp32"
    model = peak_model(vdir / "model.onnx", window)
    nbytes = model.stat().st_size
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    (vdir / "variant.toml").write_text(
        f'variant = "fp32"\nformat = "onnx"\nprecision = "fp32"\nentrypoint = "model.onnx"\n'
        f"bytes = {nbytes}\npeak_memory_bytes = {nbytes * 4}\n"
        f'device_classes = ["cpu"]\naccuracy_bp = 9000\nlatency_us = 50\n'
        f'[[files]]\npath = "model.onnx"\nsha256 = "{sha}"\nsize = {nbytes}\n'
    )
    return load_package(pdir)
