"""The Sparkplug ACL that docs/mqtt.md gives a site, tested as written: Mosquitto runs with
exactly the documented acl_file blocks (the MQTT one and the Sparkplug one, as a site adds
them to one file). Another client on the broker can neither forge the primary host's
STATE nor command the node, even with every command switch on in headframe; the host
can; and the node's own births, data and Will are all allowed."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from runtime.config import MqttSettings, SparkplugSettings
from runtime.sparkplug import payload as sp
from runtime.sparkplug.commands import Control
from runtime.sparkplug.node import EdgeNode
from tests.mqtt.test_acl import documented_acl
from tests.support import sparkplug_wire as wire
from tests.support.mqtt_client import Requester
from tests.support.sparkplug_host import Host
from tests.support.wait import wait_until_async

pytestmark = pytest.mark.mqtt
DOCS = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
GROUP, NODE, HOST = "mine-7", "crusher-2", "ignition"
PASSWORDS = {NODE: "box-secret", HOST: "host-secret", "scada": "scada-secret"}


def documented_sparkplug_acl() -> str:
    """The fenced block after the sparkplug_acl_file marker in docs/mqtt.md."""
    text = DOCS.read_text()
    m = re.search(r"<!-- sparkplug_acl_file:[^>]*-->\s*```conf\n(.*?)```", text, re.DOTALL)
    assert m, "docs/mqtt.md lost its Sparkplug acl_file example"
    return m.group(1)


class Source:
    def node_metrics(self) -> list[sp.Metric]:
        return [sp.Metric("Name", sp.STRING, "box")]

    def devices(self) -> dict[str, list[sp.Metric]]:
        return {"pump-model": [sp.Metric("Variant", sp.STRING, "int8")]}


def test_the_documented_acl_lets_only_the_host_write_state_and_commands(
    make_broker: Any, tmp_path: Path
) -> None:
    """Issue 25, item 20 (and item 6's rule that only the host writes its STATE)."""
    acl = tmp_path / "site.acl"
    acl.write_text(documented_acl() + "\n" + documented_sparkplug_acl())
    broker = make_broker("broker-acl", passwords=PASSWORDS, extra=f"acl_file {acl}").start()
    secret = tmp_path / "box-password"
    secret.write_text(PASSWORDS[NODE] + "\n")
    selected: list[tuple[str, str | None]] = []
    reloads: list[int] = []

    async def select(app: str, pin: str | None) -> None:
        selected.append((app, pin))

    async def reload() -> None:
        reloads.append(1)

    host = Host(broker.host, broker.port, GROUP, HOST, username=HOST, password=PASSWORDS[HOST])
    forger = Requester(broker.host, broker.port, username="scada", password=PASSWORDS["scada"],
                       subscribe=[f"spBv1.0/{GROUP}/#"]).open()  # fmt: skip

    def forged(topic: str, body: bytes, retain: bool = False) -> int:
        info = forger.request(topic, body, reply_topic=False, retain=retain)
        info.wait_for_publish(5)
        return info.mid

    async def main() -> dict[str, Any]:
        settings = SparkplugSettings(
            enabled=True, group_id=GROUP, edge_node_id=NODE, primary_host_id=HOST
        )
        link = MqttSettings(host=broker.host, port=broker.port, username=NODE,
                            password_file=secret)  # fmt: skip
        node = EdgeNode(
            settings, link=link, source=Source(), select=select,
            obey=lambda command: True,  # every switch on: only the ACL stands in the way
            controls={"Node Control/Reload Models": Control("reload", reload)},
            state_dir=tmp_path / "state",
        )  # fmt: skip
        node.start()
        try:
            now = int(time.time() * 1000)
            host.state(True, now)
            await wait_until_async(lambda: host.messages("DBIRTH"))
            # Another client: the host's STATE "offline", a Rebirth, a Reload, a Variant.
            refused = [
                forged(f"spBv1.0/STATE/{HOST}",
                       orjson.dumps({"online": False, "timestamp": now + 1}), retain=True),
                forged(f"spBv1.0/{GROUP}/NCMD/{NODE}",
                       wire.write([wire.write_metric(name="Node Control/Rebirth", value=True)])),
                forged(f"spBv1.0/{GROUP}/NCMD/{NODE}",
                       wire.write([wire.write_metric(name="Node Control/Reload Models",
                                                     value=True)])),
                forged(f"spBv1.0/{GROUP}/DCMD/{NODE}/pump-model",
                       wire.write([wire.write_metric(name="Variant", value="fp32")])),
            ]  # fmt: skip
            await wait_until_async(lambda: set(refused) <= forger.refused)  # PUBACK 0x87
            await asyncio.sleep(0.5)  # a write that got through would have acted by now
            assert node.status()["state"] == "online"
            assert node.status()["counters"]["commands"] == 0  # none reached the node
            assert len(host.messages("NBIRTH")) == 1
            # The host's own writes are obeyed.
            host.command(NODE, [wire.write_metric(name="Node Control/Rebirth", value=True)])
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 2)
            host.command(NODE, [wire.write_metric(name="Variant", value="fp32")], "pump-model")
            await wait_until_async(lambda: selected == [("pump-model", "fp32")])
            host.state(False, now + 2)
            await wait_until_async(lambda: host.messages("NDEATH"))
            host.state(True, now + 3)
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 3)
            return node.status()
        finally:
            await node.stop()

    try:
        status = asyncio.run(main())
        assert reloads == [] and status["counters"]["commands"] == 2  # the host's two
        # Readers read: the other client saw the node's births.
        births = [m for m in forger.messages if "/NBIRTH/" in m.topic]
        assert len(births) == 3
        # The node's own writes all went through: births, device births, its NDEATHs.
        assert forger.wait_for(lambda r: sum("/NDEATH/" in m.topic for m in r.messages) == 2)
        assert sum("/DBIRTH/" in m.topic for m in forger.messages) == 3
    finally:
        host.close()
        forger.close()
