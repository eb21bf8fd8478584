"""A real Mosquitto per test for the stream binding tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, require_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_mosquitto()
    b = Mosquitto(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()
