"""Fixtures for the serving tests: real ONNX packages in a temporary store and a loader
that opens them with the real onnx backend (runtime.loader picks variants in the daemon;
here the test says which)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime.backends.base import Backend, LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.catalog import ModelPackage, Variant
from tests.support.serving_models import write_linear_package, write_mixed_package


@dataclass
class Loaded:
    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Any = None
    attempts: list[Any] = field(default_factory=list)


def ort_loader(package: ModelPackage, pin: str | None) -> Loaded:
    variant = package.variant(pin) if pin else package.variants[0]
    backend = OnnxBackend()
    backend.load(variant, LoadOptions(intra_op_threads=1))
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
