"""The bridge end to end: a real Mosquitto, the real service, real ONNX models."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings
from tests.support.mqtt_client import Requester, user_properties
from tests.support.prereq import missing
from tests.support.serving_models import write_linear_package

pytestmark = pytest.mark.mqtt
PREFIX = "headframe/mine/n1"
INFER = f"{PREFIX}/models/part-id-reader/infer"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    write_linear_package(root)
    return root


@pytest.fixture
def harness(start_bridge: Callable[..., BridgeHarness], store: Path) -> BridgeHarness:
    from runtime.catalog import load_package

    return start_bridge([load_package(store / "part-id-reader" / "1.0.0")])


def test_infer_round_trip_with_correlation_data(broker: Mosquitto, harness: BridgeHarness) -> None:
    body = infer_body(seed=3)
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, body, correlation=b"\x00corr-1\xff")
        assert r.wait_for(lambda r: r.by_corr.get(b"\x00corr-1\xff"))
        msg = r.by_corr[b"\x00corr-1\xff"][0]
    assert msg.topic == r.reply_topic
    reply = json.loads(msg.payload)
    assert reply["status"] == "ok", reply
    out = reply["data"]["outputs"][0]
    assert out["name"] == "probabilities" and out["shape"] == [1, 10]
    assert reply["data"]["model_name"] == "part-id-reader"
    assert harness.service is not None
    variant = harness.service.slot("part-id-reader").variant.id
    assert user_properties(msg) == {"model_version": "1.0.0", "variant": variant}
    # The same numbers the service gives any other transport.
    assert harness.service is not None
    direct = harness.call(
        harness.service.infer(
            "part-id-reader",
            {"pixels": np.asarray(body["inputs"][0]["data"], np.float32).reshape(1, 64)},
        )
    )
    assert np.allclose(out["data"], direct.outputs["probabilities"].ravel(), atol=1e-6)


def test_without_response_topic_the_reply_goes_to_result(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    result = f"{PREFIX}/models/part-id-reader/result"
    with Requester(broker.host, broker.port, subscribe=[result]) as r:
        r.request(INFER, infer_body(), correlation=b"c2", reply_topic=False)
        assert r.wait_for(lambda r: r.on_topic(result))
        msg = r.on_topic(result)[0]
    assert json.loads(msg.payload)["status"] == "ok"
    assert msg.properties.CorrelationData == b"c2"


def test_status_and_info_are_retained(broker: Mosquitto, harness: BridgeHarness) -> None:
    topics = [f"{PREFIX}/status", f"{PREFIX}/info"]
    with Requester(broker.host, broker.port, subscribe=topics) as r:
        assert r.wait_for(lambda r: r.on_topic(topics[0]) and r.on_topic(topics[1]))
    # A client that subscribes later gets both at once, as retained messages.
    with Requester(broker.host, broker.port, subscribe=topics) as late:
        assert late.wait_for(lambda r: r.on_topic(topics[0]) and r.on_topic(topics[1]))
        status = late.on_topic(topics[0])[0]
        info = late.on_topic(topics[1])[0]
    assert status.retain and info.retain
    doc = json.loads(status.payload)
    assert doc["status"] == "online" and doc["applications"] == ["part-id-reader"]
    inf = json.loads(info.payload)
    app = inf["applications"][0]
    assert app["app"] == "part-id-reader" and app["variant"] in ("small", "large")
    assert app["inputs"][0]["name"] == "pixels" and app["topics"]["infer"] == INFER
    assert inf["profile"] == "generic-cpu" and inf["limits"]["max_payload_bytes"] > 0


def _tensor(name: str, datatype: str, n: int, value: float = 0.0) -> bytes:
    spec = {"name": name, "datatype": datatype, "shape": [1, n], "data": [value] * n}
    return json.dumps({"inputs": [spec]}).encode()


BAD_PAYLOADS: list[tuple[bytes, str]] = [
    (b"", "invalid_input"),
    (b"{not json", "invalid_input"),
    (b"\xff\xfe\x00garbage", "invalid_input"),
    (b"[1, 2, 3]", "invalid_input"),
    (b"[" * 100 + b"]" * 100, "invalid_input"),
    (b'{"a": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", "invalid_input"),
    (_tensor("wrong", "FP32", 64), "invalid_input"),
    (_tensor("pixels", "FP32", 63), "invalid_input"),
    (_tensor("pixels", "INT8", 64, 0), "invalid_input"),
    (b"x" * 5000, "payload_too_large"),
]


def test_bad_payloads_get_error_replies_and_the_bridge_keeps_serving(
    broker: Mosquitto, store: Path, tmp_path: Path
) -> None:
    from runtime.catalog import load_package

    pkg = load_package(store / "part-id-reader" / "1.0.0")
    s = site_settings(broker, max_payload_bytes=4096)
    result = f"{PREFIX}/models/part-id-reader/result"
    with (
        BridgeHarness(s, [pkg], tmp_path / "state") as h,
        Requester(broker.host, broker.port, subscribe=[result]) as r,
    ):
        assert h.wait_connected()
        for i, (payload, _) in enumerate(BAD_PAYLOADS):
            r.request(INFER, payload, correlation=f"bad-{i}".encode())
        r.request(f"{PREFIX}/models/no-such-app/infer", infer_body(), correlation=b"nf")
        r.request(INFER, infer_body(), correlation=b"wild", reply_topic="replies/+/x")
        r.request(INFER, infer_body(), correlation=b"good")
        assert r.wait_for(lambda r: len(r.by_corr) >= len(BAD_PAYLOADS) + 3, timeout=15)
        for i, (_, code) in enumerate(BAD_PAYLOADS):
            (reply,) = r.replies(f"bad-{i}".encode())
            assert reply["status"] == "error", (i, reply)
            assert reply["error"]["code"] == code, (i, reply)
            assert reply["error"]["message"]
        (nf,) = r.replies(b"nf")
        assert nf["error"]["code"] in ("not_found", "not_ready")
        assert r.replies(b"good")[0]["status"] == "ok"
        # A wildcard response topic cannot be published to: the error goes to result.
        (wild,) = r.by_corr[b"wild"]
        assert wild.topic == result
        assert json.loads(wild.payload)["error"]["code"] == "bad_response_topic"
        assert h.stats()["bad_requests"] == 1


def test_mosquitto_pub_and_sub_as_an_outside_client(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    if shutil.which("mosquitto_sub") is None:
        missing("mosquitto-clients not installed (scripts/system-deps.sh installs them)")
    port = str(broker.port)
    sub = subprocess.Popen(
        ["mosquitto_sub", "-V", "5", "-h", "127.0.0.1", "-p", port, "-t", "plant/replies",
         "-C", "1", "-W", "15", "-F", "%j"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(0.3)
    pixels = ",".join(["0"] * 64)
    payload = (
        '{"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[' + pixels + "]}]}"
    )
    subprocess.run(
        ["mosquitto_pub", "-V", "5", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", INFER,
         "-D", "publish", "response-topic", "plant/replies",
         "-D", "publish", "correlation-data", "order-17", "-m", payload],
        check=True,
        timeout=10,
    )  # fmt: skip
    out, _ = sub.communicate(timeout=20)
    line = json.loads(out)
    reply = json.loads(line["payload"])
    assert reply["status"] == "ok"
    assert len(reply["data"]["outputs"][0]["data"]) == 10


def test_retained_requests_are_ignored_and_counted(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, infer_body(), correlation=b"ret", retain=True)
        r.request(INFER, infer_body(), correlation=b"live")
        assert r.wait_for(lambda r: r.by_corr.get(b"live"))
        time.sleep(0.3)
        assert not r.replies(b"ret")
        assert harness.stats()["retained_ignored"] == 1
        r.request(INFER, b"", retain=True)  # clear the retained message
