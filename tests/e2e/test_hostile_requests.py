"""The worst response_format schemas against the running daemon, over HTTP and over MQTT,
and the worst pictures: each is refused with a message naming the limit, /v2/health/live
keeps answering within 100 ms while they are, and systemd's watchdog keeps being pinged
(issue 25, items 1 and 2).

Before the fix, a schema whose ``required`` list held 40,000 names (389 KB) held the event
loop for about 20 s (HTTP, MQTT and the watchdog with it): under the shipped unit
(WatchdogSec=30, StartLimitBurst=5) a few such requests leave the service failed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import daemon_proc
from tests.support.health_probe import HealthProbe
from tests.support.mosquitto import free_port, running_broker
from tests.support.mqtt_client import Requester
from tests.support.notify_socket import NotifySocket
from tests.support.prereq import need_module

need_module("llama_cpp")
pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

APP = "assistant"
CHAT = f"headframe/mine/box1/models/{APP}/chat"
WATCHDOG_USEC = 1_000_000  # pinged every 0.5 s
LOOP_BOUND_S = 0.100


def _body(schema: Any) -> dict[str, Any]:
    return {
        "model": APP,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "report"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    }


def _required(n: int) -> dict[str, Any]:
    return {"type": "object", "required": [f"field_{i:06d}" for i in range(n)]}


def _huge() -> dict[str, Any]:
    """About 13 MB: a schema nobody can compile in time, sent whole."""
    props = {f"p{i:07d}": {"type": "string", "description": "x" * 40} for i in range(180_000)}
    return {"type": "object", "properties": props}


def test_hostile_requests_are_refused_while_the_loop_and_the_watchdog_carry_on(
    tmp_path: Path,
) -> None:
    from tests.support.image_models import raw_png, write_camera_package
    from tests.support.text_models import write_text_package

    store = tmp_path / "store"
    write_text_package(store, variants=(("tiny-q8_0", "tiny", "q8_0"),))
    write_camera_package(store)
    # 400,000 x 1 (1.2 KB) and 4,000,000 x 1 (11.7 KB): 3.35 GB and 10 GiB to preprocess
    strips = [raw_png(400_000, 1, color_type=2), raw_png(4_000_000, 1, color_type=2)]
    forty_thousand = _body(_required(40_000))
    huge = json.dumps(_body(_huge())).encode()
    assert len(json.dumps(forty_thousand)) > 380_000 and len(huge) > 12_000_000

    with running_broker(tmp_path / "broker") as broker, NotifySocket(tmp_path / "n") as notify:
        port = free_port()
        mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "mine"\nnode = "box1"\n'
        config = daemon_proc.write_config(tmp_path, store, port, mqtt)
        env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        proc = daemon_proc.start(config, env)
        url = f"http://127.0.0.1:{port}"
        try:
            daemon_proc.wait_ready(url, proc)
            notify.wait_for("READY", "1")
            with Requester(broker.host, broker.port) as mq:
                assert mq.wait_for(lambda _: _mqtt_ready(url), 30)
                answers: dict[str, Any] = {}
                started = time.monotonic()
                with HealthProbe(url) as probe:
                    # One at a time, as "a few such requests" come: each would have held
                    # the loop for about 20 s before (what many at once cost is the
                    # machine's: each costs the loop a few milliseconds of parsing).
                    for i in range(3):
                        _post(url, f"http-{i}", forty_thousand, answers)
                    _post_raw(url, "http-huge", huge, answers)
                    for i in range(3):
                        mq.request(CHAT, forty_thousand, correlation=f"mqtt-{i}".encode())
                        assert mq.wait_for(lambda r, i=i: r.replies(f"mqtt-{i}".encode()), 60)
                    for i, png in enumerate(strips):
                        _post_picture(url, f"png-{i}", png, answers)
                    time.sleep(1.0)  # a watchdog period after the last answer
                finished = time.monotonic()
                mqtt_answers = [mq.replies(f"mqtt-{i}".encode())[-1] for i in range(3)]
        finally:
            daemon_proc.stop(proc)

    assert probe.latencies and not probe.failures, probe.failures
    assert probe.worst_s < LOOP_BOUND_S, (
        f"/v2/health/live took {probe.worst_s * 1000:.0f} ms while the requests were refused"
    )
    pings = notify.times_of("WATCHDOG", "1", since=started)
    gaps = [b - a for a, b in zip([started, *pings], [*pings, finished], strict=True)]
    assert max(gaps) < WATCHDOG_USEC / 1e6, f"watchdog pings stopped for {max(gaps):.1f} s"
    for i in range(3):
        status, body = answers[f"http-{i}"]
        assert status == 400, body
        assert "(the limit for one request)" in body["error"]["message"], body
    status, body = answers["http-huge"]
    assert status == 413 and "api.max_text_body_bytes" in body["error"]["message"], body
    for reply in mqtt_answers:
        assert reply["status"] == "error", reply
        assert "(the limit for one request)" in reply["error"]["message"], reply
    for i in range(len(strips)):
        status, body = answers[f"png-{i}"]
        assert status == 400 and "over the 100:1 limit" in body["error"], body


def _mqtt_ready(url: str) -> bool:
    doc = httpx.get(f"{url}/status", timeout=5).json()
    return bool(doc.get("mqtt", {}).get("connected"))


def _post(url: str, key: str, body: dict[str, Any], answers: dict[str, Any]) -> None:
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
    answers[key] = (r.status_code, r.json())


def _post_picture(url: str, key: str, png: bytes, answers: dict[str, Any]) -> None:
    headers = {"content-type": "image/png"}
    r = httpx.post(f"{url}/v2/models/camera/infer", content=png, headers=headers, timeout=120)
    answers[key] = (r.status_code, r.json())


def _post_raw(url: str, key: str, body: bytes, answers: dict[str, Any]) -> None:
    headers = {"content-type": "application/json"}
    r = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers, timeout=120)
    answers[key] = (r.status_code, r.json())
