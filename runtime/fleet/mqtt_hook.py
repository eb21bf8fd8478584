"""The fleet agent on MQTT: the ``update-now`` command and the retained
``{prefix}/fleet/state`` topic. Kept here (not in runtime/mqtt/) so the bridge knows
nothing about fleet, and the fleet nothing about paho: the bridge offers
``commands.register(name, handler)``, ``topics.prefix`` and ``conn.publish(...)``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from runtime.fleet.runner import FleetRunner

log = logging.getLogger(__name__)


def state_topic(bridge: Any) -> str:
    return f"{bridge.topics.prefix}/fleet/state"


def attach(runner: FleetRunner, bridge: Any) -> None:
    """Wire ``runner`` to an MqttBridge. Call on the daemon's event loop after
    ``bridge.start()``; state changes (from the agent's thread) hop onto that loop."""
    loop = asyncio.get_running_loop()
    topic = state_topic(bridge)

    async def update_now(body: dict[str, Any]) -> dict[str, Any]:
        runner.update_now()
        return {"update": "started", "node_id": runner.agent.node_id}

    bridge.commands.register("update-now", update_now)

    def publish_now(doc: dict[str, Any]) -> None:
        conn = getattr(bridge, "conn", None)
        if conn is None:
            return
        body = orjson.dumps(doc)
        try:
            conn.publish(topic, body, qos=1, retain=True, properties=None)
        except Exception as e:  # the broker being away must never stop an update
            log.warning("mqtt: could not publish %s: %s", topic, e)

    def on_state(doc: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(publish_now, runner.status())

    runner.add_listener(on_state)
    publish_now(runner.status())
