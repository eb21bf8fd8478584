"""MQTT fixtures (a plugin of tests/conftest.py): the one ``broker`` (a real Mosquitto per
test on a free loopback port), ``make_broker`` for tests that need more than one or need
options (TLS, passwords, a persistent database), and ``start_bridge``, the harness that
runs the real service and bridge against the broker."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.mosquitto import Mosquitto, require_mosquitto, running_broker

if TYPE_CHECKING:  # the bridge is imported when a test starts one, not by every run
    from runtime.catalog import ModelPackage
    from runtime.config import MqttSettings
    from runtime.service.load_shed import LoadShed
    from tests.support.mqtt_bridge import BridgeHarness


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


@pytest.fixture
def start_bridge(broker: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., BridgeHarness]]:
    """The MQTT harness: ``start_bridge(packages, **fields)`` starts the real service and
    bridge on ``broker`` (site "mine", node "n1"; ``fields`` override any [mqtt] setting,
    or ``settings`` replaces them whole; ``shed`` hands the bridge a LoadShed), waits
    until it has subscribed, and stops it when the test ends."""
    from tests.support.mqtt_bridge import BridgeHarness, site_settings

    with contextlib.ExitStack() as stack:

        def start(
            packages: Sequence[ModelPackage],
            *,
            settings: MqttSettings | None = None,
            shed: LoadShed | None = None,
            **fields: Any,
        ) -> BridgeHarness:
            s = settings or site_settings(broker, **fields)
            h = BridgeHarness(s, list(packages), tmp_path / "state", shed=shed)
            stack.enter_context(h)
            assert h.wait_connected(), "the bridge did not subscribe"
            return h

        yield start
