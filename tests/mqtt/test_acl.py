"""The Mosquitto ACL that docs/mqtt.md gives a site, tested as written: Mosquitto runs with
exactly the acl_file block from the docs. A requester may ask for inferences (on the box
and on the pool) but cannot command the box, even with every command switched on in
headframe; an operator can. The box itself works within its own lines (it subscribes,
publishes its status, info and answers) and nowhere else."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.catalog import ModelPackage
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings
from tests.support.mqtt_client import Requester

pytestmark = pytest.mark.mqtt
DOCS = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
SITE, NODE = "mine-7", "crusher-2"
PREFIX = f"headframe/{SITE}/{NODE}"
PASSWORDS = {NODE: "box-secret", "scada": "scada-secret", "operator": "op-secret"}


def documented_acl() -> str:
    """The fenced block after the acl_file marker in docs/mqtt.md."""
    text = DOCS.read_text()
    m = re.search(r"<!-- acl_file:[^>]*-->\s*```conf\n(.*?)```", text, re.DOTALL)
    assert m, "docs/mqtt.md lost its acl_file example"
    return m.group(1)


def test_the_documented_acl_lets_requesters_ask_and_only_operators_command(
    make_broker: Any, linear: ModelPackage, tmp_path: Path
) -> None:
    acl = tmp_path / "site.acl"
    acl.write_text(documented_acl())
    broker = make_broker("broker-acl", passwords=PASSWORDS, extra=f"acl_file {acl}").start()
    secret = tmp_path / "box-password"
    secret.write_text(PASSWORDS[NODE] + "\n")
    settings = site_settings(
        broker, site=SITE, node=NODE, username=NODE, password_file=secret, pool_group="line-a",
        reply_prefix="replies",
        # Every command on: only the broker's ACL stands between a requester and the box.
        commands={"reload": True, "select": True, "update_now": True},
    )  # fmt: skip
    status = f"{PREFIX}/status"
    with (
        BridgeHarness(settings, [linear], tmp_path / "state") as h,
        Requester(broker.host, broker.port, username="scada", password=PASSWORDS["scada"],
                  reply_topic="replies/scada/1", subscribe=[status]) as scada,
        Requester(broker.host, broker.port, username="operator", password=PASSWORDS["operator"],
                  reply_topic="replies/operator/1") as operator,
    ):  # fmt: skip
        assert h.wait_connected() and h.service is not None
        time.sleep(0.3)  # the pool's shared subscription in place
        before = h.service.slot("part-id-reader")
        scada.request(f"{PREFIX}/models/part-id-reader/infer", infer_body(), correlation=b"ask")
        scada.request(f"headframe/{SITE}/pool/part-id-reader/infer", infer_body(),
                      correlation=b"pool")  # fmt: skip
        select = {"app": "part-id-reader", "variant": "small"}
        denied = scada.request(f"{PREFIX}/cmd/select", select, correlation=b"scada-cmd")
        assert scada.wait_for(lambda r: r.by_corr.get(b"ask") and r.by_corr.get(b"pool"))
        assert scada.wait_for(lambda r: denied.mid in r.refused)  # PUBACK 0x87
        operator.request(f"{PREFIX}/cmd/status", b"", correlation=b"op-status")
        assert operator.wait_for(lambda r: r.by_corr.get(b"op-status"))
        time.sleep(0.3)  # a select that got through would have answered by now
        assert scada.replies(b"scada-cmd") == []
        assert h.service.slot("part-id-reader") is before  # nothing was swapped
        stats = h.stats()
        # The box's own writes were all allowed: its retained status reached the site.
        assert scada.wait_for(lambda r: r.on_topic(status))
    assert scada.replies(b"ask")[0]["status"] == "ok"
    assert scada.replies(b"pool")[0]["status"] == "ok"
    assert operator.replies(b"op-status")[0]["status"] == "ok"
    assert stats["commands"] == 1  # the operator's status, nothing from the requester
    assert stats["broker_rejected"] == 0  # no write of the box was refused
