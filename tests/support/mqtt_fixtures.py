"""The one ``broker`` fixture (a plugin of tests/conftest.py): a real Mosquitto per test
on a free loopback port, and ``make_broker`` for tests that need more than one or need
options (TLS, passwords, a persistent database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, require_mosquitto, running_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
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
