"""`headframe serve --config FILE` with an [mqtt] section: the daemon serves HTTP while the
broker is absent, joins it when it appears, answers over MQTT, shows the bridge on
/metrics and /status, and says "offline" on SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.mqtt_bridge import infer_body
from tests.support.mqtt_client import Requester

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def test_serve_with_mqtt_section(demo_store: Path, tmp_path: Path, make_broker: Any) -> None:
    broker = make_broker("site")
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    port = free_port()
    mqtt = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "mine"\nnode = "box1"\n'
        "[mqtt.commands]\nselect = true\n"
    )
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port, mqtt))
    url = f"http://127.0.0.1:{port}"
    status, info = "headframe/mine/box1/status", "headframe/mine/box1/info"
    try:
        daemon_proc.wait_ready(url, proc)  # the broker is down: HTTP must still serve
        r = httpx.post(f"{url}/v2/models/part-id-reader/infer", json=infer_body(), timeout=10)
        assert r.status_code == 200
        assert "headframe_mqtt_connected 0" in httpx.get(f"{url}/metrics", timeout=5).text

        broker.start()
        with Requester(broker.host, broker.port, subscribe=[status, info]) as req:
            assert req.wait_for(
                lambda r: any(
                    json.loads(m.payload)["status"] == "online" for m in r.on_topic(status)
                ),
                timeout=10,
            )
            req.request(
                "headframe/mine/box1/models/part-id-reader/infer", infer_body(), correlation=b"1"
            )
            assert req.wait_for(lambda r: r.by_corr.get(b"1"))
            reply = req.replies(b"1")[0]
            assert reply["status"] == "ok"
            assert len(reply["data"]["outputs"][0]["data"]) == 10
            assert httpx.get(f"{url}/status", timeout=5).json()["mqtt"]["connected"] is True
            # the retained info carries the box policy and what calibration measured
            assert req.wait_for(lambda r: r.on_topic(info))
            doc = json.loads(req.on_topic(info)[-1].payload)
            assert "objective" in doc["box"] and "part-id-reader" in doc["calibration"]

            # MQTT select pins through the box (kept in the state dir), as over HTTP
            served = httpx.get(f"{url}/status", timeout=5).json()["applications"][0]["variant"]
            req.request(
                "headframe/mine/box1/cmd/select",
                {"app": "part-id-reader", "variant": served},
                correlation=b"pin",
            )
            assert req.wait_for(lambda r: r.by_corr.get(b"pin"))
            assert req.replies(b"pin")[0]["status"] == "ok"
            pin = httpx.get(f"{url}/status", timeout=5).json()["box"]["pins"]["part-id-reader"]
            assert pin["variant"] == served and "by mqtt" in pin["text"]

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            assert req.wait_for(
                lambda r: json.loads(r.on_topic(status)[-1].payload).get("reason") == "shutdown"
            )
            assert json.loads(req.on_topic(status)[-1].payload)["status"] == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
