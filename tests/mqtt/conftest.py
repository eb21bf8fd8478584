"""Fixtures for the MQTT tests: the small real ONNX package most of them serve (the
broker comes from tests/support/brokers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.catalog import ModelPackage, load_package
from tests.support.serving_models import write_linear_package


@pytest.fixture
def linear(tmp_path: Path) -> ModelPackage:
    write_linear_package(tmp_path / "store")
    return load_package(tmp_path / "store" / "part-id-reader" / "1.0.0")
