"""MQTT under the governor's actuators, against a real Mosquitto: while the box sheds load a
QoS 1 request gets no reply (and never "busy") until shedding stops, then its real reply,
on a connection that outlives several keepalive periods meanwhile; a request that waits
for its parked (idle-unloaded) model says so in the ``reload_ms`` user property."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.catalog import load_package
from runtime.service.load_shed import LoadShed
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings
from tests.support.mqtt_client import Requester, user_properties
from tests.support.serving_models import write_linear_package

pytestmark = pytest.mark.mqtt
PREFIX = "headframe/mine/n1"
APP = "part-id-reader"
INFER = f"{PREFIX}/models/{APP}/infer"
KEEPALIVE_S = 2  # below the settings' floor of 5 on purpose: a hold of 3 periods is short


@pytest.fixture
def harness(
    start_bridge: Callable[..., BridgeHarness], broker: Mosquitto, tmp_path: Path
) -> BridgeHarness:
    write_linear_package(tmp_path / "store")
    pkg = load_package(tmp_path / "store" / APP / "1.0.0")
    # model_copy skips validation: keepalive 2 s keeps the test short (the field's floor is
    # an operator's guard, not the protocol's).
    settings = site_settings(broker).model_copy(update={"keepalive": KEEPALIVE_S})
    return start_bridge([pkg], settings=settings, shed=LoadShed())


@pytest.mark.slow
def test_requests_wait_at_the_broker_while_shedding_and_are_answered_after(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    shed = harness.shed
    assert shed is not None and harness.bridge is not None and harness.bridge.conn is not None
    conn = harness.bridge.conn
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, infer_body(seed=1), correlation=b"before")
        assert r.wait_for(lambda r: r.by_corr.get(b"before"))

        # The governor's thread starts shedding; the listener hands it to the loop.
        t = threading.Thread(target=shed.start, args=("memory hard", 5.0), name="governor")
        t.start()
        t.join()
        for i in range(3):
            r.request(INFER, infer_body(seed=i), correlation=f"held-{i}".encode())
        time.sleep(KEEPALIVE_S * 3)  # paho drops a link whose PINGRESP goes unread
        assert not any(r.by_corr.get(f"held-{i}".encode()) for i in range(3))
        assert conn.connected and conn.connects == 1, "the bridge reconnected while shedding"
        assert harness.stats()["held_shedding"] == 3

        shed.stop()
        assert r.wait_for(lambda r: all(r.by_corr.get(f"held-{i}".encode()) for i in range(3)))
        replies = [r.replies(f"held-{i}".encode()) for i in range(3)]
    assert all(len(rs) == 1 and rs[0]["status"] == "ok" for rs in replies), replies
    assert conn.connects == 1
    assert "busy" not in json.dumps(replies)


def test_only_the_shed_application_waits_and_commands_still_answer(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    shed = harness.shed
    assert shed is not None
    shed.start("thermal", 5.0, frozenset({"another-app"}))
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, infer_body(seed=2), correlation=b"not-shed")
        assert r.wait_for(lambda r: r.by_corr.get(b"not-shed"))
        assert r.replies(b"not-shed")[0]["status"] == "ok"
        shed.start("thermal", 5.0, frozenset({APP}))
        r.request(INFER, infer_body(seed=3), correlation=b"shed")
        r.request(f"{PREFIX}/cmd/status", {}, correlation=b"cmd")
        assert r.wait_for(lambda r: r.by_corr.get(b"cmd"))  # commands are never shed
        assert not r.by_corr.get(b"shed")
        shed.stop()
        assert r.wait_for(lambda r: r.by_corr.get(b"shed"))
        assert r.replies(b"shed")[0]["status"] == "ok"


def test_the_first_request_after_parking_carries_reload_ms(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    service = harness.service
    assert service is not None
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, infer_body(seed=4), correlation=b"warm")
        assert r.wait_for(lambda r: r.by_corr.get(b"warm"))
        assert "reload_ms" not in user_properties(r.by_corr[b"warm"][0])

        assert harness.call(service.park(APP)) is True
        r.request(INFER, infer_body(seed=5), correlation=b"cold")
        assert r.wait_for(lambda r: r.by_corr.get(b"cold"))
        r.request(INFER, infer_body(seed=6), correlation=b"warm-again")
        assert r.wait_for(lambda r: r.by_corr.get(b"warm-again"))
        cold, again = r.by_corr[b"cold"][0], r.by_corr[b"warm-again"][0]
    assert json.loads(cold.payload)["status"] == "ok"
    assert int(user_properties(cold)["reload_ms"]) >= 0
    assert "reload_ms" not in user_properties(again)  # the same worker task, the next job: cleared
