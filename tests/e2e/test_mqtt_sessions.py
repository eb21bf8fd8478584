"""`headframe serve` with every MQTT user at once: the bridge ([mqtt]), the Sparkplug edge
node and a stream binding, each on its own session of the one connection class
(runtime/mqtt/connection.py). A killed and restarted Mosquitto sees all three come back on
the same jittered back-off, each serving again (the bridge answers, the node births with
the next bdSeq, the binding is subscribed again); a broker that refuses the credentials
is said once by each, while each keeps retrying."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import Mosquitto, free_port, running_broker
from tests.support.mqtt_client import Requester
from tests.support.stream_models import write_peak_package

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

USERS = ("mqtt", "sparkplug", "streams")
SENSOR = "plant/line1/pump3/vibration"
RESULT = "plant/line1/pump3/vibration/anomaly"
SIZE = 16
FIRST_S, CAP_S = 0.2, 1.0  # the back-off every session is given here


def _settings(broker: Mosquitto, mqtt_extra: str = "") -> str:
    return (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "s"\nnode = "box1"\n'
        f"reconnect_min_s = {FIRST_S}\nreconnect_max_s = {CAP_S}\nrefused_max_s = {CAP_S}\n"
        f"{mqtt_extra}"
        f'[sparkplug]\nenabled = true\ngroup_id = "plant"\nedge_node_id = "box1"\n'
        f"reconnect_max_s = {CAP_S}\n"
        f'[[streams]]\nname = "pump3"\napp = "pump-vibration"\nsubscribe = ["{SENSOR}"]\n'
        f'size = {SIZE}\npublish = "{RESULT}"\n'
    )


def _sessions(url: str) -> dict[str, dict[str, Any]]:
    """Each user's session as /status shows it, by the name its log lines carry."""
    status = httpx.get(f"{url}/status", timeout=5).json()
    return {name: status[name]["session"] for name in USERS}


def _wait(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _window(start: int) -> list[float]:
    return [float(start + i) for i in range(SIZE)]


def test_a_killed_broker_sees_every_user_back_on_one_jittered_backoff(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_peak_package(store, window=SIZE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_broker(tmp_path / "broker") as broker:
        config = daemon_proc.write_config(tmp_path, store, port, _settings(broker))
        proc = daemon_proc.start(config)
        try:
            daemon_proc.wait_ready(url, proc)
            _wait(lambda: all(s["connected"] for s in _sessions(url).values()))
            before = _sessions(url)
            bdseq = httpx.get(f"{url}/status", timeout=5).json()["sparkplug"]["bdseq"]

            broker.kill()  # no goodbye to anyone: every session is simply lost
            _wait(lambda: not any(s["connected"] for s in _sessions(url).values()))
            time.sleep(4.0)  # several attempts each against a broker that is not there
            down = _sessions(url)
            broker.start()
            back = time.monotonic()
            _wait(lambda: all(s["connected"] for s in _sessions(url).values()), timeout=15)
            # the longest wait is CAP_S: nobody sits out a long back-off once it is back
            assert time.monotonic() - back < CAP_S + 3.0

            waits = {}
            for name in USERS:
                seen = down[name]["recent_waits_s"][len(before[name]["recent_waits_s"]) :]
                assert len(seen) >= 4, (name, seen)
                # The one policy (runtime/retry.py, "equal" jitter): the i-th wait after a
                # loss lies in [d/2, d] with d = min(CAP_S, FIRST_S * 2**i).
                for i, wait in enumerate(seen):
                    d = min(CAP_S, FIRST_S * 2**i)
                    assert d / 2 - 1e-3 <= wait <= d + 1e-3, (name, i, seen)
                # jittered, never lock step (waits are kept to the millisecond, so two of a
                # dozen may meet by chance: most must differ)
                assert len(set(seen)) > len(seen) // 2, (name, seen)
                assert down[name]["failures"] > before[name]["failures"]
                waits[name] = seen
            assert len({tuple(w) for w in waits.values()}) == 3, waits  # no two in step

            # each is serving again: the bridge answers a request ...
            with Requester(broker.host, broker.port) as r:
                body = {"inputs": [{"name": "samples", "datatype": "FP32",
                                    "shape": [1, SIZE], "data": _window(0)}]}  # fmt: skip
                r.request("headframe/s/box1/models/pump-vibration/infer", body, correlation=b"1")
                assert r.wait_for(lambda r: r.by_corr.get(b"1"), timeout=10)
                reply = orjson.loads(r.by_corr[b"1"][0].payload)
                assert reply["status"] == "ok", reply
            # ... the edge node is born again with the next bdSeq (the new session's Will) ...
            spb = _wait(lambda: (s := httpx.get(f"{url}/status", timeout=5).json()["sparkplug"])
                        ["state"] == "online" and s)  # fmt: skip
            assert spb["bdseq"] == (bdseq + 1) % 256
            assert spb["counters"]["sessions"] == 2
            # ... and the binding is subscribed again: a window of samples has its result
            with Requester(broker.host, broker.port, subscribe=[RESULT]) as listener:
                time.sleep(0.5)  # connected is CONNACK; the subscription follows it
                for value in _window(100):
                    listener.client.publish(SENSOR, repr(value), qos=1).wait_for_publish(5)
                assert listener.wait_for(lambda r: any(m.topic == RESULT for m in r.messages),
                                         timeout=10)  # fmt: skip
                result = next(m for m in listener.messages if m.topic == RESULT)
                assert orjson.loads(result.payload)["outputs"]["peak"][0][0] == 115.0
        finally:
            daemon_proc.stop(proc)


def test_refused_credentials_are_said_once_by_each_user(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_peak_package(store, window=SIZE)
    broker = Mosquitto(tmp_path / "broker", passwords={"box": "right-horse-battery"}).start()
    wrong = tmp_path / "mqtt.pw"
    wrong.write_text("staple-wrong-guess\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    extra = _settings(broker, f'username = "box"\npassword_file = "{wrong}"\n')
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port, extra))
    try:
        daemon_proc.wait_ready(url, proc)  # HTTP serves: a refusing broker stops nothing
        # every user keeps trying, on the slow schedule ...
        sessions = _wait(lambda: (s := _sessions(url)) and all(
            v["failures"] >= 4 for v in s.values()) and s, timeout=40)  # fmt: skip
        log = daemon_proc.log_of(proc)
        for name in USERS:
            assert not sessions[name]["connected"]
            assert "refused us" in sessions[name]["last_error"], sessions[name]
            # ... and says so once, with the reason, not once per attempt
            said = [line for line in log.splitlines()
                    if f"{name}: broker 127.0.0.1:{broker.port} refused us" in line]  # fmt: skip
            assert len(said) == 1, (name, said)
            assert "password" in said[0]
        assert "staple-wrong-guess" not in log
        spb = httpx.get(f"{url}/status", timeout=5).json()["sparkplug"]
        assert spb["state"].startswith("connecting: ") and "refused us" in spb["state"]
    finally:
        daemon_proc.stop(proc)
        broker.stop()
