"""`headframe serve` with [[streams]]: a sensor publishes a sine with injected spikes on
its own topic; the binding's windows run a real model (peak |x|) and each result on the
broker matches the window the test computes from what it sent; the alert topic changes
only on a state change; bad samples are counted on /status; a broker restart mid-stream
only pauses it."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.mqtt_client import Requester
from tests.support.prometheus import scraped
from tests.support.sparkplug_host import Host
from tests.support.stream_models import write_peak_package
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

SENSOR = "plant/line1/pump3/vibration"
RESULT = "plant/line1/pump3/vibration/anomaly"
ALERT = "plant/line1/pump3/alarm"
SIZE = 16


def _send(sensor: Requester, payload: bytes) -> None:
    """One sample on the sensor's topic, QoS 1, as a device publishes it."""
    sensor.request(SENSOR, payload, reply_topic=False).wait_for_publish(5)


def _signal(n: int, start: int) -> list[float]:
    """A sine of amplitude 1 with a spike of 5 in windows 3 and 4 of every eight."""
    out = []
    for i in range(start, start + n):
        value = math.sin(i / 3.0)
        if (i // SIZE) % 8 in (3, 4) and i % SIZE == 7:
            value = 5.0
        out.append(value)
    return out


def test_stream_binding_results_alerts_bad_samples_and_broker_restart(
    broker: Mosquitto, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    write_peak_package(store, window=SIZE)
    port = free_port()
    extra = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "s"\nnode = "box1"\n'
        f'[[streams]]\nname = "pump3"\napp = "pump-vibration"\nsubscribe = ["{SENSOR}"]\n'
        f'size = {SIZE}\npublish = "{RESULT}"\nqos = 1\nstall_after_s = 3\n'
        f'[streams.alert]\ntopic = "{ALERT}"\noutput = 0\nthreshold = 3.0\nhysteresis = 0.5\n'
        # a window that does not fit the model's input: said on /status at start
        f'[[streams]]\nname = "misfit"\napp = "pump-vibration"\nsubscribe = ["plant/other"]\n'
        f'size = {SIZE - 1}\npublish = "plant/other/result"\n'
        f'[sparkplug]\nenabled = true\ngroup_id = "plant"\nedge_node_id = "box1"\n'
        f"scan_interval_s = 0.1\n"
    )
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port, extra))
    url = f"http://127.0.0.1:{port}"

    def stream() -> dict[str, Any]:
        return httpx.get(f"{url}/status", timeout=5).json()["streams"]

    listener = Requester(broker.host, broker.port, subscribe=[RESULT, ALERT]).open()
    scada = Host(broker.host, broker.port, "plant")
    sent: list[float] = []
    try:
        daemon_proc.wait_ready(url, proc)
        wait_until(lambda: stream()["connected"])
        misfit = stream()["streams"]["misfit"]["problem"]
        assert f"a window of {SIZE - 1} values does not fit shape [-1, {SIZE}]" in misfit
        sensor = Requester(broker.host, broker.port).open()
        for k, value in enumerate(_signal(SIZE * 8, 0)):
            _send(sensor, repr(value).encode())
            sent.append(value)
            if k == 20:  # bad samples: counted, not part of any window
                for bad in (b"abc", b"", b"inf", b'{"x": 1}'):
                    _send(sensor, bad)
            if (k + 1) % SIZE == 0:
                # one window at a time: a window that finds one running and one waiting
                # replaces the waiting one (freshest data first), which would skip a number
                wait_until(lambda n=(k + 1) // SIZE: len(listener.docs(RESULT)) == n)
        wait_until(lambda: len(listener.docs(RESULT)) == 8)
        results = listener.docs(RESULT)
        for doc in results:
            n = doc["window"]["number"]
            expected = max(abs(v) for v in sent[(n - 1) * SIZE : n * SIZE])
            assert doc["outputs"]["peak"][0][0] == pytest.approx(expected, rel=1e-6)
            assert doc["window"]["samples"] == SIZE
            assert doc["window"]["first_at"] <= doc["window"]["last_at"]
            assert (doc["app"], doc["version"], doc["variant"]) == ("pump-vibration", "1.0.0",
                                                                    "fp32")  # fmt: skip
        assert [d["window"]["number"] for d in results] == list(range(1, 9))
        # spikes in windows 4 and 5: one "on" (window 4), one "off" (window 6)
        alerts = wait_until(lambda: len(listener.docs(ALERT)) == 2 and listener.docs(ALERT))
        assert [(a["state"], a["window"]["number"]) for a in alerts] == [("on", 4), ("off", 6)]
        status = stream()["streams"]["pump3"]
        assert status["counters"]["non_numeric"] == 4
        assert status["counters"]["results"] == 8
        assert status["stalled"] is False
        assert status["alert"] == "off"
        metrics = scraped(httpx.get(f"{url}/metrics", timeout=5).text)
        events = metrics["headframe_stream_events_total"]
        assert events[(("kind", "results"), ("stream", "pump3"))] == 8
        assert events[(("kind", "non_numeric"), ("stream", "pump3"))] == 4
        assert metrics["headframe_stream_stalled"][(("stream", "pump3"),)] == 0
        page = httpx.get(f"{url}/", timeout=5).text
        assert "<h2>streams</h2>" in page and "pump3" in page

        # a SCADA host sees the newest result on the application's device
        def last_result() -> str | None:
            values = [m.value for x in scada.messages() if x.device == "pump-vibration"
                      for m in x.payload.metrics if m.value and isinstance(m.value, str)
                      and m.value.startswith("pump3 #")]  # fmt: skip
            return values[-1] if values else None

        assert scada.wait(lambda: (last_result() or "").startswith("pump3 #8:"))
        # both rooms registered with the daemon: /status sections and /metrics families
        sections = httpx.get(f"{url}/status", timeout=5).json().keys()
        assert {"streams", "sparkplug", "mqtt"} <= sections
        metrics = scraped(httpx.get(f"{url}/metrics", timeout=5).text)
        assert metrics["headframe_sparkplug_online"] == {(): 1.0}

        # nobody can have the bridge answer onto a binding's result topic
        body = {"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, SIZE],
                            "data": [0.0] * SIZE}]}  # fmt: skip
        topic = "headframe/s/box1/models/pump-vibration/infer"
        sensor.request(topic, body, correlation=b"1", reply_topic=RESULT).wait_for_publish(5)

        def bad_requests() -> int:
            return int(httpx.get(f"{url}/status", timeout=5).json()["mqtt"]["bad_requests"])

        wait_until(lambda: bad_requests() == 1)
        time.sleep(0.3)
        assert all("stream" in doc for doc in listener.docs(RESULT))

        # the broker restarts mid-stream; the binding resumes on its own
        sensor.close()
        listener.close()
        broker.stop()
        broker.start()
        wait_until(lambda: stream()["connected"])
        listener = Requester(broker.host, broker.port, subscribe=[RESULT]).open()
        sensor = Requester(broker.host, broker.port).open()
        for k, value in enumerate(_signal(SIZE * 2, len(sent))):
            _send(sensor, repr(value).encode())
            sent.append(value)
            if k == SIZE - 1:
                wait_until(lambda: len(listener.docs(RESULT)) == 1)
        wait_until(lambda: len(listener.docs(RESULT)) == 2)
        assert [d["window"]["number"] for d in listener.docs(RESULT)] == [9, 10]
        # the sensor falls silent: /status says the stream stalled
        wait_until(lambda: stream()["streams"]["pump3"]["stalled"], timeout=10)
        metrics = scraped(httpx.get(f"{url}/metrics", timeout=5).text)
        assert metrics["headframe_stream_stalled"][(("stream", "pump3"),)] == 1
        sensor.close()
    finally:
        listener.close()
        scada.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
