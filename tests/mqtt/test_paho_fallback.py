"""paho's private API only on the tested minor version: the start-up check, the fallback
to paho's own code paths (the bridge serving on it, against a real Mosquitto), and rule 6
on both paths: a model that takes half a second never stalls the loop or keepalive."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.config import MqttSettings
from runtime.mqtt.loop_client import LoopClient
from runtime.mqtt.paho_compat import TESTED, choose, installed_version, start_up
from runtime.mqtt.plain_client import PlainClient
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings, write_slow_package
from tests.support.mqtt_client import Requester

pytestmark = pytest.mark.mqtt
INFER = "headframe/mine/n1/models/{app}/infer"


def test_only_the_tested_minor_version_gets_the_fast_path() -> None:
    s = MqttSettings()
    tested = ".".join(map(str, TESTED))
    assert choose(s, f"{tested}.0").fast and choose(s, f"{tested}.7").fast
    for other in ("2.0.0", "2.1.0", "2.3.0", "3.0.0", "unknown"):
        mode = choose(s, other)
        assert not mode.fast and other in mode.reason and "own code paths" in mode.reason
    off = choose(MqttSettings(paho_fast_path=False), f"{tested}.0")
    assert not off.fast and "paho_fast_path" in off.reason


def test_the_pin_in_pyproject_is_the_tested_minor_and_is_installed() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    major, minor = TESTED
    assert f'"paho-mqtt>={major}.{minor},<{major}.{minor + 1}"' in text
    assert choose(MqttSettings(), installed_version()).fast


def test_fast_properties_are_installed_by_the_start_up_check_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import paho.mqtt._packet as paho_packet
    from paho.mqtt.properties import Properties

    from runtime.mqtt.connection import MqttConnection
    from runtime.mqtt.properties import FastProperties

    monkeypatch.setattr(paho_packet, "Properties", Properties)  # restored after the test
    MqttConnection(MqttSettings(), subscriptions=list)  # a constructor rebinds nothing
    assert paho_packet.Properties is Properties
    start_up(MqttSettings(paho_fast_path=False))
    assert paho_packet.Properties is Properties
    assert start_up(MqttSettings()).fast
    assert paho_packet.Properties is FastProperties


def test_the_bridge_serves_on_paho_own_code_paths(
    broker: Mosquitto, linear: Any, tmp_path: Path
) -> None:
    settings = site_settings(broker, paho_fast_path=False, queue_size=4)
    with BridgeHarness(settings, [linear], tmp_path / "state") as h:
        assert h.wait_connected()
        assert h.bridge is not None and h.bridge.conn is not None
        client = h.bridge.conn.client
        assert isinstance(client, PlainClient) and not isinstance(client, LoopClient)
        # More QoS 1 requests than the Receive Maximum: flow control on the fallback too.
        assert h.bridge.conn.window is not None
        n = 3 * h.bridge.conn.window.maximum
        with Requester(broker.host, broker.port) as r:
            for i in range(n):
                r.request(
                    INFER.format(app="part-id-reader"), infer_body(seed=i), correlation=b"%d" % i
                )
            assert r.wait_for(lambda r: len(r.by_corr) >= n, 30), len(r.by_corr)
            msgs = [r.by_corr[b"%d" % i][0] for i in range(n)]
        assert all(json.loads(m.payload)["status"] == "ok" for m in msgs)
        # paho's own Properties carry the same reply properties.
        assert h.service is not None
        variant = h.service.slot("part-id-reader").variant.id
        for m in msgs:
            assert dict(m.properties.UserProperty) == {"model_version": "1.0.0", "variant": variant}
            assert m.properties.ContentType == "application/json"
        assert h.stats().get("busy", 0) == 0
    assert h.bridge.conn is None  # stopped cleanly


def _slow_request_rows(h: BridgeHarness, app: str, at_least_s: float) -> tuple[int, float]:
    """Rows per request for one inference of at least ``at_least_s`` on this machine."""
    assert h.service is not None
    rows = 1
    while True:
        x = np.zeros((rows, 64), np.float32)
        start = time.perf_counter()
        h.call(h.service.infer(app, {"pixels": x}))
        took = time.perf_counter() - start
        if took >= at_least_s or rows >= 4096:
            return rows, took
        rows = min(4096, math.ceil(rows * at_least_s / max(took, 1e-3) * 1.2))


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "paho-own-paths"])
def test_a_half_second_model_never_stalls_the_loop_or_keepalive(
    broker: Mosquitto, tmp_path: Path, fast: bool
) -> None:
    app = "slow-reader"
    # Many rounds, few rows: the time is the model's, not the decoding of a big payload.
    pkg = write_slow_package(tmp_path / "store", app=app, rounds=480)
    keepalive = 5  # Mosquitto drops a client silent for 1.5 keepalives
    settings = site_settings(broker, keepalive=keepalive, paho_fast_path=fast)
    with BridgeHarness(settings, [pkg], tmp_path / "state") as h:
        assert h.wait_connected()
        rows, took = _slow_request_rows(h, app, 0.5)
        gaps: list[float] = []

        async def ticker() -> None:
            while True:
                t = time.monotonic()
                await asyncio.sleep(0.02)
                gaps.append(time.monotonic() - t - 0.02)

        task = h.run(lambda: asyncio.ensure_future(ticker()))
        # Busy for longer than Mosquitto waits for a silent client.
        n = math.ceil(1.5 * keepalive / took) + 1
        body = infer_body(rows=rows)
        with Requester(broker.host, broker.port) as r:
            for i in range(n):
                r.request(INFER.format(app=app), body, correlation=b"%d" % i)
            assert r.wait_for(lambda r: len(r.by_corr) >= n, n * took * 4 + 20)
            replies = [json.loads(r.by_corr[b"%d" % i][0].payload) for i in range(n)]
        h.run(task.cancel)
        assert all(rep["status"] == "ok" for rep in replies)
        assert h.bridge is not None and h.bridge.conn is not None
        assert h.bridge.conn.client.__class__ is (LoopClient if fast else PlainClient)
        # One session throughout: neither side gave up on the other.
        assert h.bridge.conn.connects == 1 and h.bridge.conn.failures == 0
        # A model run on the loop would show as a gap of at least its own time; a shared,
        # busy machine adds scheduling gaps of its own, well below that.
        assert max(gaps) < took * 0.8, (max(gaps), took)
