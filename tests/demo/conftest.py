"""Fixtures for the model-package tests."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.demo.data import DigitsSplit, load_split
from runtime.demo.factory import train_models


@pytest.fixture(scope="module")
def digits_split() -> DigitsSplit:
    return load_split(0)


@pytest.fixture(scope="module")
def sklearn_models(digits_split: DigitsSplit) -> dict[str, Any]:
    """The demo's sklearn models retrained here, independently of the built store."""
    return train_models(digits_split, seed=0)
