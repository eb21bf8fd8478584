"""The outside review's MQTT findings (issue 14), each against a real broker: Response
Topics aimed at headframe's own topics, commands switched off by default, unknown
application names, repeats answered with the same bytes, QoS 1 never "busy"."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from runtime.catalog import ModelPackage
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings, write_slow_package
from tests.support.mqtt_client import Requester

pytestmark = pytest.mark.mqtt
PREFIX = "headframe/mine/n1"
INFER = f"{PREFIX}/models/part-id-reader/infer"
RESULT = f"{PREFIX}/models/part-id-reader/result"
WATCH = ["headframe/#", "spBv1.0/#"]


def _code(reply: dict[str, Any]) -> str:
    return "ok" if reply["status"] == "ok" else str(reply["error"]["code"])


def test_response_topics_on_headframe_topics_are_refused_and_nothing_is_published_there(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    # reload and select are switched on: only the Response Topic check stands in the way.
    s = site_settings(broker, commands={"reload": True, "select": True})
    targets = [
        f"{PREFIX}/cmd/reload",  # this box: would reload every model
        "headframe/mine/n2/cmd/select",  # another node's commands
        "headframe/mine/n2/status",  # another node's retained status
        "headframe/mine/pool/part-id-reader/infer",
        "spBv1.0/mine/NCMD/n2",
    ]
    with (
        BridgeHarness(s, [linear], tmp_path / "state") as h,
        Requester(
            broker.host, broker.port, subscribe=["headframe/#", "spBv1.0/#", "replies/#"]
        ) as r,
    ):
        assert h.wait_connected()
        for i, topic in enumerate(targets):
            r.request(INFER, infer_body(), correlation=b"t%d" % i, reply_topic=topic)
        r.request(INFER, infer_body(), correlation=b"fine", reply_topic="replies/scada/1")

        def answers(corr: bytes) -> list[paho.MQTTMessage]:  # not our own requests
            return [m for m in r.by_corr.get(corr, []) if m.topic != INFER]

        assert r.wait_for(lambda r: all(answers(b"t%d" % i) for i in range(len(targets))))
        assert r.wait_for(lambda r: answers(b"fine"))
        time.sleep(0.3)  # a command run by a stray reply would have answered by now
        for i, topic in enumerate(targets):
            (msg,) = answers(b"t%d" % i)
            assert msg.topic == RESULT, topic
            reply = json.loads(msg.payload)
            assert _code(reply) == "bad_response_topic", reply
            assert topic in reply["error"]["message"]
            assert r.on_topic(topic) == [], topic  # the box published nothing there
        assert answers(b"fine")[0].topic == "replies/scada/1"
        stats = h.stats()
    assert stats.get("commands", 0) == 0
    assert stats["bad_requests"] == len(targets)


def test_reply_prefix_keeps_replies_under_it(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    s = site_settings(broker, reply_prefix="replies")
    with (
        BridgeHarness(s, [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port, subscribe=[RESULT, "elsewhere/#", "replies/#"]) as r,
    ):
        assert h.wait_connected()
        r.request(INFER, infer_body(), correlation=b"in", reply_topic="replies/scada")
        r.request(INFER, infer_body(), correlation=b"out", reply_topic="elsewhere/x")
        assert r.wait_for(lambda r: r.by_corr.get(b"in") and r.by_corr.get(b"out"))
    assert _code(r.replies(b"in")[0]) == "ok"
    (out,) = r.by_corr[b"out"]
    assert out.topic == RESULT
    assert "outside mqtt.reply_prefix" in json.loads(out.payload)["error"]["message"]


def test_commands_that_change_what_is_served_are_refused_unless_switched_on(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    nudged: list[dict[str, Any]] = []

    async def update_now(body: dict[str, Any]) -> Any:
        nudged.append(body)
        return {"update": "started"}

    with (
        BridgeHarness(site_settings(broker), [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port) as r,
    ):
        assert h.wait_connected() and h.bridge is not None and h.service is not None
        h.run(lambda: h.bridge.commands.register("update-now", update_now))  # type: ignore[union-attr]
        before = h.service.slot("part-id-reader")
        r.request(f"{PREFIX}/cmd/select", {"app": "part-id-reader", "variant": "small"},
                  correlation=b"select")  # fmt: skip
        r.request(f"{PREFIX}/cmd/reload", b"", correlation=b"reload")
        r.request(f"{PREFIX}/cmd/update-now", b"{}", correlation=b"update-now")
        r.request(f"{PREFIX}/cmd/status", b"", correlation=b"status")
        names = (b"select", b"reload", b"update-now", b"status")
        assert r.wait_for(lambda r: all(r.by_corr.get(c) for c in names))
        after = h.service.slot("part-id-reader")
    for name in (b"select", b"reload", b"update-now"):
        (reply,) = r.replies(name)
        assert _code(reply) == "forbidden", reply
        switch = "mqtt.commands." + name.decode().replace("-", "_")
        assert switch in reply["error"]["message"]
    assert _code(r.replies(b"status")[0]) == "ok"
    assert after is before and after.variant.id == before.variant.id  # nothing swapped
    assert nudged == []


def _redeliver(h: BridgeHarness, topic: str, body: bytes, reply_to: str, corr: bytes) -> None:
    """What the broker does when our acknowledgement was lost in a reconnect."""
    msg = paho.MQTTMessage(mid=4243, topic=topic.encode())
    msg.payload, msg.qos, msg.dup = body, 1, True
    msg.properties = Properties(PacketTypes.PUBLISH)
    msg.properties.ResponseTopic = reply_to
    msg.properties.CorrelationData = corr
    assert h.bridge is not None
    h.run(lambda: h.bridge._on_message(msg))  # type: ignore[union-attr]


def test_a_repeat_of_any_answered_request_gets_the_same_bytes(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    # A status reply carries the time: computed twice, the bytes would differ.
    status = f"{PREFIX}/cmd/status"
    with (
        BridgeHarness(site_settings(broker), [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port, subscribe=[RESULT]) as r,
    ):
        assert h.wait_connected()
        r.request(status, b"", correlation=b"st")
        r.request(INFER, infer_body(), correlation=b"bad", reply_topic=f"{PREFIX}/cmd/reload")
        assert r.wait_for(lambda r: r.by_corr.get(b"st") and r.by_corr.get(b"bad"))
        time.sleep(0.05)
        _redeliver(h, status, b"", r.reply_topic, b"st")
        _redeliver(h, INFER, json.dumps(infer_body()).encode(), f"{PREFIX}/cmd/reload", b"bad")
        assert r.wait_for(lambda r: len(r.by_corr[b"st"]) == 2 and len(r.by_corr[b"bad"]) == 2)
        stats = h.stats()
    first, again = r.by_corr[b"st"]
    assert first.payload == again.payload
    assert r.by_corr[b"bad"][0].payload == r.by_corr[b"bad"][1].payload
    assert stats["duplicates"] == 2 and stats["commands"] == 1 and stats["bad_requests"] == 1


def test_qos1_requests_wait_at_the_broker_and_only_qos0_is_answered_busy(
    broker: Mosquitto, tmp_path: Path
) -> None:
    slow = write_slow_package(tmp_path / "store")
    infer = f"{PREFIX}/models/slow-reader/infer"
    n = 40
    with (
        BridgeHarness(site_settings(broker, queue_size=2), [slow], tmp_path / "state") as h,
        Requester(broker.host, broker.port) as r,
    ):
        assert h.wait_connected()
        for i in range(n):  # far more than a queue of 2 (and 8 workers) holds
            r.request(infer, infer_body(seed=i), correlation=b"q1-%d" % i, qos=1)
        assert r.wait_for(lambda r: sum(1 for k in r.by_corr if k.startswith(b"q1")) == n, 60)
        q1 = [r.replies(b"q1-%d" % i) for i in range(n)]
        for i in range(n):
            r.request(infer, infer_body(seed=i), correlation=b"q0-%d" % i, qos=0)
        assert r.wait_for(lambda r: sum(1 for k in r.by_corr if k.startswith(b"q0")) == n, 60)
        q0 = [r.replies(b"q0-%d" % i) for i in range(n)]
        busy = h.stats()["busy"]
    assert all(len(x) == 1 for x in q1 + q0)  # each exactly once
    assert {_code(x[0]) for x in q1} == {"ok"}
    codes = [_code(x[0]) for x in q0]
    assert set(codes) == {"ok", "busy"}
    assert codes.count("busy") == busy


@pytest.mark.slow
def test_unknown_application_names_leave_no_per_name_state(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    n = 5000
    with (
        BridgeHarness(site_settings(broker), [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port) as r,
    ):
        assert h.wait_connected() and h.bridge is not None and h.service is not None
        bridge = h.bridge
        r.request(INFER, infer_body(), correlation=b"real")
        assert r.wait_for(lambda r: r.by_corr.get(b"real"))
        tasks_before = h.run(lambda: len(asyncio.all_tasks()))
        for i in range(n):
            r.request(f"{PREFIX}/models/ghost{i}/infer", infer_body(), correlation=b"g%d" % i)
        assert r.wait_for(lambda r: len(r.by_corr) == n + 1, timeout=120)
        codes = {_code(r.replies(b"g%d" % i)[0]) for i in range(n)}
        queues = h.run(bridge.queue_depths)
        tasks_after = h.run(lambda: len(asyncio.all_tasks()))
        telemetry_apps = h.run(lambda: set(bridge.telemetry.document({})["applications"]))
        service_apps = set(h.service.stats.snapshot())
    assert codes == {"not_found"}
    assert list(queues) == ["part-id-reader"]
    assert tasks_after <= tasks_before
    assert telemetry_apps == {"part-id-reader"} and service_apps == {"part-id-reader"}


def test_oversize_payloads_are_answered_and_the_brokers_limit_is_the_hard_cap(
    make_broker: Any, linear: ModelPackage, tmp_path: Path
) -> None:
    # As docs/mqtt.md tells a site: message_size_limit a little above max_payload_bytes.
    broker = make_broker("capped", extra="message_size_limit 8192").start()
    s = site_settings(broker, max_payload_bytes=4096)
    with (
        BridgeHarness(s, [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port) as r,
    ):
        assert h.wait_connected()
        r.request(INFER, b"x" * 6000, correlation=b"over-box")  # over the box's limit
        with Requester(broker.host, broker.port) as sender:  # over the broker's limit
            huge = sender.request(INFER, b"x" * 20000, correlation=b"over-broker")
            time.sleep(0.5)
            assert huge.mid not in sender.acked - sender.refused  # never accepted
        r.request(INFER, infer_body(), correlation=b"fine")
        assert r.wait_for(lambda r: r.by_corr.get(b"over-box") and r.by_corr.get(b"fine"))
        received = h.stats()["received"]
    assert _code(r.replies(b"over-box")[0]) == "payload_too_large"
    assert _code(r.replies(b"fine")[0]) == "ok"
    assert received == 2  # the publish over the broker's limit never reached the box
