"""Fixtures for the service's tests: a store holding two versions of one application whose
every (version, variant) computes different numbers, so a reply can be traced to what
computed it; and that application served over real HTTP on loopback through a real change
path over a real box."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from runtime.api.app import create_app
from runtime.box import Box
from runtime.catalog import ModelPackage, Store
from runtime.config import MqttSettings, Settings
from runtime.mqtt.bridge import MqttBridge
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from tests.support.http_server import ServerHandle, running_server
from tests.support.loaders import box_loader, make_box
from tests.support.mosquitto import Mosquitto
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
VERSIONS = ("1.0.0", "2.0.0")
VARIANTS = ("small", "large")


@dataclass(frozen=True)
class TwoVersions:
    store: Store
    x: np.ndarray  # the one input every client sends
    expected: dict[tuple[str, str], np.ndarray]  # (version, variant) -> its probabilities

    def package(self, version: str) -> ModelPackage:
        return self.store.load(APP, version)

    def computed_by(self, out: Any) -> set[tuple[str, str]]:
        """Which (version, variant) computes ``out`` for ``x`` (exactly one, or none)."""
        got = np.asarray(out, np.float32).reshape(self.x.shape[0], -1)
        return {k for k, want in self.expected.items() if np.allclose(got, want, atol=1e-6)}


@pytest.fixture
def two_versions(tmp_path: Path) -> TwoVersions:
    root = tmp_path / "store"
    for i, version in enumerate(VERSIONS):
        write_linear_package(root, version=version, variants=VARIANTS, seed=10 * i)
    # The pointer names 1.0.0: the fleet (here: the test) moves it.
    (root / APP / "active.json").write_text('{"version": "1.0.0", "previous": null}')
    x = np.random.default_rng(3).uniform(0, 16, (1, 64)).astype(np.float32)
    expected = {}
    for version in VERSIONS:
        for variant in VARIANTS:
            path = root / APP / version / "variants" / variant / "model.onnx"
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            expected[version, variant] = sess.run(["probabilities"], {"pixels": x})[0]
    found = TwoVersions(Store(root), x, expected)
    assert all(len(found.computed_by(e)) == 1 for e in expected.values())  # all differ
    return found


@dataclass
class Served:
    """The application served over HTTP (and MQTT with a broker): ``call`` runs a coroutine
    on the server's loop; ``changes`` is the change path, ``box`` its pins."""

    handle: ServerHandle
    service: InferenceService
    changes: ChangePath
    box: Box
    bridge: MqttBridge | None

    @property
    def url(self) -> str:
        return self.handle.url

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 120) -> Any:
        return self.handle.call(fn, timeout)

    def serving(self) -> tuple[str, str]:
        slot = self.service.slot(APP)
        return slot.package.version, slot.variant.id


@contextmanager
def served(two: TwoVersions, state: Path, broker: Mosquitto | None = None) -> Iterator[Served]:
    """1.0.0 served (the test loader's first variant, "large") with a box keeping its pins
    under ``state``; the MQTT bridge too when ``broker`` is given."""
    box = make_box(state)
    parts: dict[str, Any] = {}

    async def build() -> tuple[Any, Any]:
        service = InferenceService(box_loader(box), queue_size=256, workers=2)
        changes = ChangePath(service, lambda: box)
        await changes.start(two.store, [APP])
        bridge = None
        if broker is not None:
            mqtt = MqttSettings(host=broker.host, port=broker.port, site="mine", node="n1")
            bridge = MqttBridge(
                mqtt, service, changes=changes, info=dict, state_dir=state, shed=None
            )
            bridge.start()
        parts.update(service=service, changes=changes, bridge=bridge)
        app = create_app(service, settings=Settings(demo=False), changes=changes)
        return app, parts

    async def close(parts: dict[str, Any]) -> None:
        if parts["bridge"] is not None:
            await parts["bridge"].stop()
        await parts["service"].close()

    with running_server(build, close=close) as handle:
        if parts["bridge"] is not None:
            assert parts["bridge"].conn.wait_subscribed(10)
        yield Served(handle, parts["service"], parts["changes"], box, parts["bridge"])
