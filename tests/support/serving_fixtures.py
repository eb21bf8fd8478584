"""Fixtures for the serving tests (a plugin of tests/conftest.py): real ONNX packages in a
temporary store and a loader that opens them with the real onnx backend
(tests.support.loaders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.loaders import ort_loader
from tests.support.serving_models import write_linear_package, write_mixed_package


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    write_linear_package(root)
    write_mixed_package(root)
    return root


@pytest.fixture
def loader() -> Any:
    return ort_loader
