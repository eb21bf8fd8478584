"""Fixtures for the MQTT tests: a real Mosquitto per test, on a free loopback port, and
the small real ONNX package most of them serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.catalog import ModelPackage, load_package
from tests.support.mosquitto import Mosquitto, require_mosquitto, running_broker
from tests.support.serving_models import write_linear_package


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[object]:
    """Build brokers with options (TLS, passwords); all are stopped after the test."""
    made: list[Mosquitto] = []

    def make(name: str = "broker2", **kwargs: object) -> Mosquitto:
        require_mosquitto()
        b = Mosquitto(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def linear(tmp_path: Path) -> ModelPackage:
    write_linear_package(tmp_path / "store")
    return load_package(tmp_path / "store" / "part-id-reader" / "1.0.0")
