"""Run the real MQTT bridge over the real inference service for tests and the benchmark.

``BridgeHarness`` owns an event loop on its own thread (as the daemon does), loads real
ONNX packages with the real onnx backend, and starts ``MqttBridge``. Tests stay
synchronous and talk to it through a broker like any site client would.
``write_slow_package`` makes a real ONNX model that takes a few milliseconds a row, so
queues can fill and requests can expire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from runtime.catalog import ModelPackage, load_package
from runtime.config import MqttSettings
from runtime.mqtt.bridge import MqttBridge
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from runtime.service.load_shed import LoadShed
from tests.support.loaders import box_loader, make_box
from tests.support.loop_thread import LoopThread
from tests.support.mosquitto import Mosquitto

T = TypeVar("T")


def site_settings(broker: Mosquitto, **kw: Any) -> MqttSettings:
    """Bridge settings for ``broker``: site "mine", node "n1"; ``kw`` overrides any field."""
    base: dict[str, Any] = {"host": broker.host, "port": broker.port, "site": "mine", "node": "n1"}
    base.update(kw)
    return MqttSettings(**base)


class BridgeHarness:
    """A service plus bridge on a private event loop thread."""

    def __init__(
        self,
        settings: MqttSettings,
        packages: list[ModelPackage],
        state_dir: Path,
        *,
        queue_size: int = 64,
        workers: int = 1,
        info: Callable[[], dict[str, Any]] | None = None,
        pin: str | None = None,
        shed: LoadShed | None = None,
    ) -> None:
        self.pin = pin
        self.shed = shed
        self.settings = settings
        self.packages = packages
        self.state_dir = state_dir
        self.queue_size = queue_size
        self.workers = workers
        self.info = info or (lambda: {"hardware": {"cpu": "test"}, "profile": "generic-cpu"})
        self._loop_thread = LoopThread()
        self.service: InferenceService | None = None
        self.changes: ChangePath | None = None
        self.bridge: MqttBridge | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return self._loop_thread.call(coro, timeout)

    def run(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop (the bridge's state lives there)."""
        return self._loop_thread.run(fn)

    async def _start(self) -> None:
        # A real box keeps the pins: ``pin`` is an operator's, as MQTT select sets them.
        box = make_box(self.state_dir / "box")
        for p in self.packages:
            if self.pin is not None:
                box.set_pin(p.application, self.pin, "test")
        self.service = InferenceService(
            box_loader(box), queue_size=self.queue_size, workers=self.workers
        )
        self.changes = ChangePath(self.service, lambda: box)
        for p in self.packages:
            await self.service.add(p)
        self.bridge = MqttBridge(
            self.settings,
            self.service,
            changes=self.changes,
            info=self.info,
            state_dir=self.state_dir,
            shed=self.shed,
        )
        self.bridge.start()

    async def _stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()
        if self.service is not None:
            await self.service.close(2.0)

    def __enter__(self) -> BridgeHarness:
        self._loop_thread.__enter__()
        self.call(self._start())
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.call(self._stop())
        finally:
            self._loop_thread.__exit__(*exc)

    def stats(self) -> dict[str, Any]:
        assert self.bridge is not None
        return self.run(self.bridge.stats)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        assert self.bridge is not None and self.bridge.conn is not None
        return self.bridge.conn.wait_subscribed(timeout)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_slow_package(
    store: Path, app: str = "slow-reader", version: str = "1.0.0", *, rounds: int = 24
) -> ModelPackage:
    """pixels FP32 [-1, 64] -> probabilities FP32 [-1, 10] through ``rounds`` 1024x1024
    matrix products: a real model that takes milliseconds per row on one thread."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w_in = rng.normal(0, 0.05, (64, 1024)).astype(np.float32)
    w = (np.eye(1024) + rng.normal(0, 0.001, (1024, 1024))).astype(np.float32)
    w_out = rng.normal(0, 0.05, (1024, 10)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["pixels", "Win"], ["h0"])]
    for i in range(rounds):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "W"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{rounds}", "Wout"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(a, n) for a, n in ((w_in, "Win"), (w, "W"), (w_out, "Wout"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pdir = store / app / version
    vdir = pdir / "variants" / "base"
    vdir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, vdir / "model.onnx")
    (pdir / "package.toml").write_text(
        f'application = "{app}"\nversion = "{version}"\ntask = "tensor"\n'
        f"accuracy_floor_bp = 0\n"
        'inputs = [{name = "pixels", datatype = "FP32", shape = [-1, 64]}]\n'
        'outputs = [{name = "probabilities", datatype = "FP32", shape = [-1, 10]}]\n'
        f'[lineage]\nfoundation = "test"\nsector = "test"\napplication = "{app}"\n'
    )
    model_file = vdir / "model.onnx"
    size = model_file.stat().st_size
    (vdir / "variant.toml").write_text(
        'variant = "base"\nformat = "onnx"\nprecision = "fp32"\nentrypoint = "model.onnx"\n'
        f'bytes = {size}\npeak_memory_bytes = {size * 2}\ndevice_classes = ["cpu"]\n'
        f'[[files]]\npath = "model.onnx"\nsha256 = "{_sha(model_file)}"\nsize = {size}\n'
    )
    return load_package(pdir)


def infer_body(
    pixels: list[float] | None = None, *, rows: int = 1, seed: int = 0
) -> dict[str, Any]:
    """A KServe v2 JSON request for the part-id-reader shape (FP32 [rows, 64], 0..16)."""
    if pixels is None:
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 17, rows * 64).astype(float).tolist()
    return {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [rows, 64], "data": pixels}]}
