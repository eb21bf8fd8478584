"""Governor decisions on MQTT ``{prefix}/events``: QoS 1, not retained, with the numbers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.governor_daemon import APP, APP_SETTINGS, governor_section, run_daemon
from tests.support.mosquitto import running_broker
from tests.support.mqtt_client import Requester
from tests.support.pressure_host import PressureHost


@pytest.mark.slow
@pytest.mark.mqtt
def test_each_governor_action_is_an_event_on_mqtt(tmp_path: Path, demo_store: Path) -> None:
    host = PressureHost(tmp_path / "host")
    with running_broker(tmp_path / "broker") as broker:
        extra = (
            APP_SETTINGS + governor_section(host.root, "dry_run = true\n")
            + f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "s1"\nnode = "n1"\n'
        )  # fmt: skip
        topic = "headframe/s1/n1/events"
        with run_daemon(tmp_path, demo_store, extra) as d, Requester(
            "127.0.0.1", broker.port, subscribe=[topic]
        ) as sub:  # fmt: skip
            d.wait(lambda: d.status().get("mqtt", {}).get("connected") is True, "MQTT up", 30)
            host.memory(3.0)  # hard: a step down, or load shed when nothing is lighter
            assert sub.wait_for(lambda s: s.on_topic(topic), timeout=30), "no event"
            time.sleep(0.3)
            events = [json.loads(m.payload) for m in sub.on_topic(topic)]
            msg = sub.on_topic(topic)[0]
    assert msg.qos == 1 and not msg.retain
    first = events[0]
    assert first["event"] == "governor" and first["level"] == "hard"
    assert first["action"] in ("step_down", "no_rung")
    assert "memory_available_pct 3.0%" in first["reason"]
    if first["action"] == "step_down":
        assert first["app"] == APP and first["dry_run"] is True
