"""Fixtures for the serving tests: real ONNX packages in a temporary store and a loader
that opens them with onnxruntime (until runtime.loader lands, a minimal one here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.backends.base import Backend, BackendInfo, IOSchema, LoadOptions
from runtime.catalog import ModelPackage, TensorSpec, Variant
from tests.support.serving_models import write_linear_package, write_mixed_package

_ORT_TYPES = {
    "tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(double)": "FP64",
    "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(string)": "BYTES",
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(int8)": "INT8",
}  # fmt: skip


class OrtBackend:
    """onnxruntime on the CPU, the smallest thing that satisfies the Backend protocol."""

    name = "onnx"
    thread_safe = True

    def load(self, variant: Variant, options: LoadOptions) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(variant.entrypoint), so, providers=["CPUExecutionProvider"]
        )
        self.unloaded = False

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        feed = {
            k: (np.vectorize(bytes.decode, otypes=[object])(v) if v.dtype == object else v)
            for k, v in inputs.items()
        }
        outs = self.session.run(names, feed)
        return {
            n: (np.array([s.encode() for s in o.ravel()], dtype=object).reshape(o.shape)
                if o.dtype.kind in "OU" else o)
            for n, o in zip(names, outs, strict=True)
        }  # fmt: skip

    def generate(self, request: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> IOSchema:
        def spec(a: Any) -> TensorSpec:
            shape = tuple(d if isinstance(d, int) else -1 for d in a.shape)
            return TensorSpec(name=a.name, datatype=_ORT_TYPES[a.type], shape=shape)

        return IOSchema(
            tuple(spec(a) for a in self.session.get_inputs()),
            tuple(spec(a) for a in self.session.get_outputs()),
        )

    def info(self) -> BackendInfo:
        return BackendInfo("onnx", "cpu", {"provider": "CPUExecutionProvider"})

    def unload(self) -> None:
        self.unloaded = True


@dataclass
class Loaded:
    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Any = None
    attempts: list[Any] = field(default_factory=list)


def ort_loader(package: ModelPackage, pin: str | None) -> Loaded:
    variant = package.variant(pin) if pin else package.variants[0]
    backend = OrtBackend()
    backend.load(variant, LoadOptions())
    return Loaded(package, variant, backend)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    write_linear_package(root)
    write_mixed_package(root)
    return root


@pytest.fixture
def loader() -> Any:
    return ort_loader
