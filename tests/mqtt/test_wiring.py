"""The daemon's hook-up: [mqtt] present -> a bridge whose figures show on /status and
/metrics; HTTP serves while the broker is absent; no [mqtt] -> no bridge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.config import Settings
from runtime.mqtt.wiring import attach_bridge
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from tests.support.http_server import running_server
from tests.support.loaders import make_box, ort_loader
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_client import Requester
from tests.support.serving_models import write_linear_package

pytestmark = pytest.mark.mqtt


def test_no_mqtt_section_no_bridge(tmp_path: Path) -> None:
    settings = Settings(paths={"state_dir": tmp_path})
    service = InferenceService(ort_loader)
    changes = ChangePath(service, lambda: make_box(tmp_path))
    assert attach_bridge(settings, service, changes=changes) is None


def test_http_serves_while_the_broker_is_absent_then_mqtt_joins(
    make_broker: Any, tmp_path: Path
) -> None:
    broker: Mosquitto = make_broker("late")
    pkg = write_linear_package(tmp_path / "store")
    settings = Settings(
        paths={"state_dir": tmp_path / "state"},
        mqtt={"host": broker.host, "port": broker.port, "site": "s", "node": "n"},
    )
    context = ServerContext()
    holder: dict[str, Any] = {}

    async def build() -> tuple[Any, Any]:
        service = InferenceService(ort_loader)
        await service.add(pkg)
        changes = ChangePath(service, lambda: make_box(tmp_path / "state"))
        bridge = attach_bridge(settings, service, lambda: context.box, changes=changes)
        assert bridge is not None
        context.add_section("mqtt", bridge.stats)  # as the daemon registers it
        context.add_metrics("mqtt", bridge.metric_families)
        bridge.start()
        holder["bridge"] = bridge
        return create_app(service, settings=settings, context=context), service

    async def close(service: InferenceService) -> None:
        await holder["bridge"].stop()
        await service.close()

    with running_server(build, close=close) as server:
        body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                            "data": [0.0] * 64}]}  # fmt: skip
        r = httpx.post(f"{server.url}/v2/models/part-id-reader/infer", json=body, timeout=10)
        assert r.status_code == 200
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "headframe_mqtt_connected 0" in metrics
        assert httpx.get(f"{server.url}/status", timeout=10).json()["mqtt"]["connected"] is False

        broker.start()
        assert holder["bridge"].conn.wait_subscribed(5)
        with Requester(broker.host, broker.port) as req:
            req.request("headframe/s/n/models/part-id-reader/infer", body, correlation=b"1")
            assert req.wait_for(lambda r: r.by_corr.get(b"1"))
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "headframe_mqtt_connected 1" in metrics
        assert 'headframe_mqtt_messages_total{kind="replies"} 1' in metrics
