"""Small real ONNX models and packages for tests, built with onnx.helper (no downloads).

``write_mlp`` writes a two-layer classifier (input "pixels" FP32 [-1, n], output
"probabilities" FP32 [-1, classes]) with seeded random weights; ``write_package`` wraps
such files into a store package with real sha256 digests and sizes in variant.toml.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import tomli_w
from onnx import TensorProto, helper, numpy_helper

from runtime.catalog import ModelPackage, load_package


def mlp_model(
    *,
    inputs: int = 64,
    hidden: int = 32,
    classes: int = 10,
    seed: int = 0,
    input_name: str = "pixels",
    output_name: str = "probabilities",
) -> onnx.ModelProto:
    """A Gemm-Relu-Gemm-Softmax classifier with seeded random weights."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (inputs, hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.1, hidden).astype(np.float32)
    w2 = rng.normal(0, 0.3, (hidden, classes)).astype(np.float32)
    b2 = rng.normal(0, 0.1, classes).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", [input_name, "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output_name], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", classes])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime and OpenVINO we support
    onnx.checker.check_model(model)
    return model


def write_mlp(path: Path, **kwargs: int | str) -> Path:
    """Write ``mlp_model(**kwargs)`` to ``path``; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(mlp_model(**kwargs), str(path))  # type: ignore[arg-type]
    return path


@dataclass(frozen=True)
class VariantSpec:
    """One variant to write: an MLP of ``hidden`` units and the metadata to claim for it."""

    variant: str
    hidden: int = 32
    precision: str = "fp32"
    accuracy_bp: int | None = 9500
    seed: int = 0
    peak_memory_bytes: int | None = None  # default: 4 x the file size


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_variant(package_dir: Path, spec: VariantSpec) -> Path:
    """Write variants/<id>/model.onnx and its variant.toml with the real digest and size."""
    vdir = package_dir / "variants" / spec.variant
    model = write_mlp(vdir / "model.onnx", hidden=spec.hidden, seed=spec.seed)
    size = model.stat().st_size
    meta: dict[str, object] = {
        "variant": spec.variant,
        "format": "onnx",
        "precision": spec.precision,
        "entrypoint": "model.onnx",
        "bytes": size,
        "peak_memory_bytes": spec.peak_memory_bytes or 4 * size,
        "device_classes": ["cpu", "gpu", "npu"],
    }
    if spec.accuracy_bp is not None:
        meta["accuracy_bp"] = spec.accuracy_bp
    meta["files"] = [{"path": "model.onnx", "sha256": sha256_of(model), "size": size}]
    (vdir / "variant.toml").write_text(tomli_w.dumps(meta))
    return vdir


def write_package(
    root: Path,
    variants: Sequence[VariantSpec],
    *,
    app: str = "toy-classifier",
    version: str = "1.0.0",
    accuracy_floor_bp: int = 9000,
) -> ModelPackage:
    """A store package at ``root/app/version`` holding one ONNX MLP per spec."""
    pdir = root / app / version
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / "package.toml").write_text(
        f'application = "{app}"\nversion = "{version}"\ntask = "tensor"\n'
        f"accuracy_floor_bp = {accuracy_floor_bp}\n\n"
        '[lineage]\nfoundation = "none"\nsector = "test"\napplication = "test"\n\n'
        '[[inputs]]\nname = "pixels"\ndatatype = "FP32"\nshape = [-1, 64]\n\n'
        '[[outputs]]\nname = "probabilities"\ndatatype = "FP32"\nshape = [-1, 10]\n'
    )
    for spec in variants:
        write_variant(pdir, spec)
    return load_package(pdir)
