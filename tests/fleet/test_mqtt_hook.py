"""The fleet agent over MQTT: the update-now command starts a cycle at once, and the
state is retained on {prefix}/fleet/state for a late subscriber."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runtime.config import load_settings
from runtime.fleet import mqtt_hook
from runtime.fleet.publish import publish
from runtime.mqtt.bridge import MqttBridge
from tests.support.fleet_repo import DEMO_APP, fleet_in_process, make_version, write_box_config
from tests.support.loop_thread import LoopThread
from tests.support.mosquitto import Mosquitto, require_mosquitto
from tests.support.mqtt_bridge import site_settings
from tests.support.mqtt_client import Requester
from tests.support.static_server import StaticServer

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
PREFIX = "headframe/mine/n1"
STATE = f"{PREFIX}/fleet/state"


def test_update_now_over_mqtt_and_retained_state(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer, demo_store: Path
) -> None:
    require_mosquitto()
    broker = Mosquitto(tmp_path / "broker").start()
    demo_pkg = demo_store / DEMO_APP / "1.0.0"
    publish(repo_dir, keys_dir, [demo_pkg])
    cfg = write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=server.url,
        trusted_root=repo_dir / "metadata" / "1.root.json", poll_interval_s=3600,
    )  # fmt: skip
    settings = load_settings(cfg)
    parts: dict[str, Any] = {}

    async def start() -> None:
        service, runner = fleet_in_process(settings)
        bridge = MqttBridge(
            site_settings(broker, commands={"update_now": True}),  # off by default
            service, changes=runner.changes, info=lambda: {}, state_dir=tmp_path / "box",
        )  # fmt: skip
        bridge.start()
        mqtt_hook.attach(runner, bridge)
        parts.update(runner=runner, service=service, bridge=bridge)
        parts["task"] = asyncio.get_running_loop().create_task(runner.run())

    with LoopThread() as lt:
        try:
            lt.call(start(), 120)
            with Requester(broker.host, broker.port, subscribe=[STATE]) as req:

                def active(r: Requester, version: str) -> bool:
                    msgs = r.on_topic(STATE)
                    if not msgs:
                        return False
                    doc = json.loads(msgs[-1].payload)
                    return doc["apps"].get(DEMO_APP, {}).get("active") == version

                assert req.wait_for(lambda r: active(r, "1.0.0"), timeout=120)
                publish(repo_dir, keys_dir, [make_version(demo_pkg, tmp_path / "pkgs", "2.0.0")])
                req.request(f"{PREFIX}/cmd/update-now", {}, correlation=b"u1")
                assert req.wait_for(lambda r: r.replies(b"u1"), timeout=30)
                assert req.wait_for(lambda r: active(r, "2.0.0"), timeout=120)
                docs = [json.loads(m.payload)["apps"] for m in req.on_topic(STATE)]
                stages = {d[DEMO_APP]["stage"] for d in docs if DEMO_APP in d}
                assert {"downloading", "trial", "active"} <= stages
            # A late subscriber gets the last state at once: it is retained.
            with Requester(broker.host, broker.port, subscribe=[STATE]) as late:
                assert late.wait_for(lambda r: active(r, "2.0.0"), timeout=10)
                assert any(m.retain for m in late.on_topic(STATE))
        finally:
            if "runner" in parts:
                lt.call(parts["runner"].stop(), 120)
                lt.call(asyncio.wait_for(parts["task"], 60), 120)
                lt.call(parts["bridge"].stop(), 120)
                lt.call(parts["service"].close(), 120)
            broker.stop()
