"""Bridge behaviour: commands, telemetry, expiry, redelivery, broker absent at start (busy:
test_hardening.py)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from runtime.catalog import ModelPackage
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings, write_slow_package
from tests.support.mqtt_client import Requester, user_properties
from tests.support.prometheus import prometheus_text

pytestmark = pytest.mark.mqtt
PREFIX = "headframe/mine/n1"


@pytest.fixture
def slow(tmp_path: Path) -> ModelPackage:
    return write_slow_package(tmp_path / "slow-store")


def _seconds_per_request(h: BridgeHarness, app: str) -> float:
    assert h.service is not None
    x = {"pixels": np.zeros((1, 64), np.float32)}
    h.call(h.service.infer(app, x))
    times = []
    for _ in range(5):  # the fastest: a load spike here must not shrink the queue ahead
        start = time.perf_counter()
        h.call(h.service.infer(app, x))
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.fixture
def harness(start_bridge: Callable[..., BridgeHarness], linear: ModelPackage) -> BridgeHarness:
    # select and reload are off unless a site switches them on (test_hardening.py)
    commands = {"select": True, "reload": True}
    return start_bridge([linear], telemetry_interval_s=0.5, commands=commands)


def test_commands_select_status_reload(broker: Mosquitto, harness: BridgeHarness) -> None:
    infer = f"{PREFIX}/models/part-id-reader/infer"
    with Requester(broker.host, broker.port, subscribe=[f"{PREFIX}/info"]) as r:
        r.request(
            f"{PREFIX}/cmd/select", {"app": "part-id-reader", "variant": "small"}, correlation=b"s"
        )
        assert r.wait_for(lambda r: r.by_corr.get(b"s"))
        assert r.replies(b"s")[0] == {
            "status": "ok", "data": {"app": "part-id-reader", "variant": "small", "pin": "small"}
        }  # fmt: skip
        # info is republished with the new variant; replies carry it.
        assert r.wait_for(
            lambda r: any(
                json.loads(m.payload)["applications"][0]["variant"] == "small"
                for m in r.on_topic(f"{PREFIX}/info")
            )
        )
        r.request(infer, infer_body(), correlation=b"after")
        assert r.wait_for(lambda r: r.by_corr.get(b"after"))
        assert user_properties(r.by_corr[b"after"][0])["variant"] == "small"

        r.request(
            f"{PREFIX}/cmd/select", {"app": "part-id-reader", "variant": "nope"}, correlation=b"bad"
        )
        r.request(f"{PREFIX}/cmd/status", b"", correlation=b"st")
        r.request(f"{PREFIX}/cmd/reload", {"app": "part-id-reader"}, correlation=b"rl")
        r.request(f"{PREFIX}/cmd/update-now", b"{}", correlation=b"up")
        r.request(f"{PREFIX}/cmd/explode", b"{}", correlation=b"x")
        assert r.wait_for(
            lambda r: all(r.by_corr.get(c) for c in (b"bad", b"st", b"rl", b"up", b"x"))
        )
    assert r.replies(b"bad")[0]["status"] == "error"
    status = r.replies(b"st")[0]["data"]
    assert status["status"] == "online" and status["mqtt"]["connected"] is True
    assert r.replies(b"rl")[0]["data"]["reloaded"][0]["variant"] == "small"  # the pin holds
    assert r.replies(b"up")[0]["error"]["code"] == "not_found"
    assert "unknown command" in r.replies(b"x")[0]["error"]["message"]


def test_commands_can_be_disabled(broker: Mosquitto, linear: ModelPackage, tmp_path: Path) -> None:
    s = site_settings(broker, commands_enabled=False)
    with (
        BridgeHarness(s, [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port) as r,
    ):
        assert h.wait_connected()
        r.request(f"{PREFIX}/cmd/status", b"", correlation=b"st")
        r.request(f"{PREFIX}/models/part-id-reader/infer", infer_body(), correlation=b"ok")
        assert r.wait_for(lambda r: r.by_corr.get(b"ok"))
        time.sleep(0.3)
        assert not r.replies(b"st")


def test_telemetry_is_periodic_qos0_with_expiry(broker: Mosquitto, harness: BridgeHarness) -> None:
    topic = f"{PREFIX}/telemetry"
    with Requester(broker.host, broker.port, subscribe=[topic]) as r:
        r.request(f"{PREFIX}/models/part-id-reader/infer", infer_body(), correlation=b"t")
        assert r.wait_for(lambda r: len(r.on_topic(topic)) >= 2, timeout=5)
        msg = r.on_topic(topic)[-1]
    assert msg.qos == 0
    assert 1 <= msg.properties.MessageExpiryInterval <= 1
    doc = json.loads(msg.payload)
    assert doc["mqtt"]["buffer"]["max_bytes"] > 0 and "dropped" in doc["mqtt"]["buffer"]
    assert "temperatures_c" in doc and doc["node"] == "n1"
    assert doc["service"]["part-id-reader"]["requests"] >= 1


@pytest.mark.slow
def test_expired_requests_are_dropped_and_counted(
    broker: Mosquitto, slow: ModelPackage, tmp_path: Path
) -> None:
    infer = f"{PREFIX}/models/slow-reader/infer"
    with BridgeHarness(site_settings(broker, queue_size=1000), [slow], tmp_path / "s") as h:
        assert h.wait_connected()
        per = _seconds_per_request(h, "slow-reader")
        ahead = min(950, 8 + math.ceil(3.0 / per))  # at least 3 s of work queued ahead
        with Requester(broker.host, broker.port) as r:
            for i in range(ahead):
                r.request(infer, infer_body(seed=i), correlation=b"%d" % i)
            r.request(infer, infer_body(), correlation=b"late", expiry=1)
            r.request(infer, infer_body(), correlation=b"last")
            assert r.wait_for(lambda r: r.by_corr.get(b"last"), timeout=120)
            assert not r.replies(b"late")
        assert h.stats()["expired"] == 1


def test_qos1_redelivery_is_answered_from_the_cache(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    infer = f"{PREFIX}/models/part-id-reader/infer"
    body = json.dumps(infer_body(seed=5)).encode()
    assert harness.service is not None
    with Requester(broker.host, broker.port) as r:
        r.request(infer, body, correlation=b"once")
        assert r.wait_for(lambda r: r.by_corr.get(b"once"))
        served = harness.service.stats.snapshot()["part-id-reader"]["requests"]
        # The broker redelivers (DUP set) when our acknowledgement was lost in a reconnect.
        msg = paho.MQTTMessage(mid=4242, topic=infer.encode())
        msg.payload, msg.qos, msg.dup = body, 1, True
        msg.properties = Properties(PacketTypes.PUBLISH)
        msg.properties.ResponseTopic = r.reply_topic
        msg.properties.CorrelationData = b"once"
        assert harness.bridge is not None
        harness.run(lambda: harness.bridge._on_message(msg))  # type: ignore[union-attr]
        assert r.wait_for(lambda r: len(r.by_corr[b"once"]) == 2)
        first, again = r.by_corr[b"once"]
    assert first.payload == again.payload
    assert harness.service.stats.snapshot()["part-id-reader"]["requests"] == served
    assert harness.stats()["duplicates"] == 1


def test_broker_down_at_start(make_broker: Any, linear: ModelPackage, tmp_path: Path) -> None:
    broker = make_broker("late")
    with BridgeHarness(site_settings(broker), [linear], tmp_path / "state") as h:
        assert h.bridge is not None and h.service is not None
        time.sleep(0.8)  # the service serves meanwhile (the HTTP API would too)
        out = h.call(h.service.infer("part-id-reader", {"pixels": np.zeros((1, 64), np.float32)}))
        assert out.outputs["probabilities"].shape == (1, 10)
        assert not h.stats()["connected"]
        broker.start()
        assert h.wait_connected(5)
        with Requester(broker.host, broker.port) as r:
            r.request(f"{PREFIX}/models/part-id-reader/infer", infer_body(), correlation=b"1")
            assert r.wait_for(lambda r: r.by_corr.get(b"1"))


def test_metrics_text_is_valid_prometheus(broker: Mosquitto, harness: BridgeHarness) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with Requester(broker.host, broker.port) as r:
        r.request(f"{PREFIX}/models/part-id-reader/infer", infer_body(), correlation=b"m")
        assert r.wait_for(lambda r: r.by_corr.get(b"m"))
    assert harness.bridge is not None
    text = harness.run(lambda: prometheus_text(harness.bridge.metric_families))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["headframe_mqtt_connected"].samples[0].value == 1
    replies = [
        s.value
        for s in families["headframe_mqtt_messages"].samples
        if s.labels["kind"] == "replies"
    ]
    assert replies == [1]
    reasons = {s.labels["reason"] for s in families["headframe_mqtt_buffer_dropped"].samples}
    assert reasons == {"full", "age", "rejected"}


def test_retained_status_lists_applications_loaded_after_the_broker_answered(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    # The daemon connects while its models still load: the retained status must catch up.
    with BridgeHarness(site_settings(broker), [], tmp_path / "state") as h:
        assert h.wait_connected()
        assert h.service is not None
        h.call(h.service.add(linear))
        status = f"{PREFIX}/status"
        deadline = time.monotonic() + 10
        apps: list[str] = []
        while time.monotonic() < deadline and apps != ["part-id-reader"]:
            with Requester(broker.host, broker.port, subscribe=[status]) as r:  # retained
                assert r.wait_for(lambda r: r.on_topic(status))
                apps = json.loads(r.on_topic(status)[-1].payload)["applications"]
        assert apps == ["part-id-reader"]
