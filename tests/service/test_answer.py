"""Every reply names the version and variant that computed it, while both change under load.

Two versions of one application, each variant computing different numbers, are swapped
back and forth (fleet activations and operator pins, through the change path) while
clients ask over HTTP KServe, over MQTT and of the service directly. A reply whose name
does not match the numbers in it would be a transport naming what it looked up, not what
computed it. (The OpenAI routes serve text and embedding models; their replies name the
variant from the same answer, ``system_fingerprint``: runtime/api/openai.py.)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as paho
import pytest

from tests.service.conftest import APP, VARIANTS, VERSIONS, TwoVersions, served
from tests.support.mosquitto import Mosquitto, running_broker
from tests.support.mqtt_client import Requester

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

TOPIC = f"headframe/mine/n1/models/{APP}/infer"


def _body(two: TwoVersions) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                        "data": two.x.reshape(-1).tolist()}]}  # fmt: skip


def _user(msg: paho.MQTTMessage) -> dict[str, str]:
    return dict(getattr(msg.properties, "UserProperty", []) or [])


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    with running_broker(tmp_path / "broker") as b:
        yield b


def test_every_reply_names_what_computed_it_while_versions_and_variants_swap(
    two_versions: TwoVersions, tmp_path: Path, broker: Mosquitto
) -> None:
    two = two_versions
    body = _body(two)
    stop = threading.Event()
    http_replies: list[dict[str, Any]] = []
    failures: list[str] = []

    def http_client() -> None:
        with httpx.Client(base_url=s.url, timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"/v2/models/{APP}/infer", json=body)
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    http_replies.append(r.json())

    with served(two, tmp_path / "state", broker) as s:
        direct: list[tuple[str, str, np.ndarray]] = []

        async def direct_client(until: asyncio.Event) -> None:
            while not until.is_set():
                answer = await s.service.infer(APP, {"pixels": two.x}, protocol="stream")
                direct.append((answer.version, answer.variant, answer.outputs["probabilities"]))
                await asyncio.sleep(0)

        async def swap_around() -> None:
            until = asyncio.Event()
            clients = [asyncio.create_task(direct_client(until)) for _ in range(2)]
            for round_ in range(3):
                for version in (*VERSIONS[1:], VERSIONS[0]):  # 2.0.0, then back to 1.0.0
                    for variant in VARIANTS:
                        package = two.package(version)
                        await s.changes.activate(package, variant, why="test")
                        await asyncio.sleep(0.03)
                await s.changes.pin(APP, VARIANTS[round_ % 2], "http")  # a pin, then undo it
                await asyncio.sleep(0.03)
                await s.changes.pin(APP, None, "http")
            until.set()
            await asyncio.gather(*clients)

        threads = [threading.Thread(target=http_client) for _ in range(3)]
        for t in threads:
            t.start()
        with Requester(broker.host, broker.port) as r:
            sent = 0

            def mqtt_client() -> None:
                nonlocal sent
                while not stop.is_set():
                    r.request(TOPIC, body, correlation=b"%d" % sent)
                    sent += 1
                    time.sleep(0.005)

            pump = threading.Thread(target=mqtt_client)
            pump.start()
            try:
                s.call(swap_around)
            finally:
                stop.set()
                pump.join()
                for t in threads:
                    t.join()
            assert r.wait_for(lambda r: len(r.by_corr) >= sent, 60), (len(r.by_corr), sent)
            mqtt = [m for msgs in r.by_corr.values() for m in msgs]

    assert not failures, failures[:3]  # zero failed requests through every swap
    # HTTP KServe names the version in the body; its numbers are that version's.
    for reply in http_replies:
        out = reply["outputs"][0]["data"]
        assert {v for v, _ in two.computed_by(out)} == {reply["model_version"]}, reply
    # MQTT names version and variant as user properties; the numbers are theirs.
    for msg in mqtt:
        doc = json.loads(msg.payload)
        assert doc["status"] == "ok", doc
        user = _user(msg)
        named = (user["model_version"], user["variant"])
        assert doc["data"]["model_version"] == named[0]
        assert two.computed_by(doc["data"]["outputs"][0]["data"]) == {named}, named
    # The service's own answer, as the stream bindings read it.
    for version, variant, out in direct:
        assert two.computed_by(out) == {(version, variant)}
    # Not a vacuous pass: replies came from both versions on every path.
    assert {r["model_version"] for r in http_replies} == set(VERSIONS)
    assert {_user(m)["model_version"] for m in mqtt} == set(VERSIONS)
    assert {(v, w) for v, w, _ in direct} == {(v, w) for v in VERSIONS for w in VARIANTS}
