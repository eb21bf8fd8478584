"""The edge node against a real Mosquitto, read by a host that decodes with its own
wire-format reader: birth order, bdSeq, seq and its wrap, aliases, rebirth, STATE."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.config import MqttSettings, SparkplugSettings
from runtime.sparkplug import payload as sp
from runtime.sparkplug.commands import Control
from runtime.sparkplug.node import EdgeNode
from tests.support import sparkplug_wire as wire
from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug_host import Host
from tests.support.wait import wait_until_async

pytestmark = [pytest.mark.mqtt]


class Counting:
    """A metric source whose node counter moves at every scan (so every scan is an NDATA)."""

    def __init__(self, moving: bool = True) -> None:
        self.n = 0
        self.moving = moving

    def node_metrics(self) -> list[sp.Metric]:
        if self.moving:
            self.n += 1
        return [sp.Metric("Counter", sp.UINT64, self.n), sp.Metric("Name", sp.STRING, "box")]

    def devices(self) -> dict[str, list[sp.Metric]]:
        return {"pump-model": [sp.Metric("Variant", sp.STRING, "int8")]}


def _node(broker: Mosquitto, tmp_path: Path, source: Any, **kw: Any) -> EdgeNode:
    async def select(app: str, pin: str | None) -> None:
        raise AssertionError("no DCMD in this test")

    settings = SparkplugSettings(enabled=True, group_id="plant", edge_node_id="box1", **kw)
    return EdgeNode(settings, link=_link(broker), source=source, select=select,
                    obey=lambda command: False, state_dir=tmp_path / "state")  # fmt: skip


def _link(broker: Mosquitto) -> MqttSettings:
    return MqttSettings(host=broker.host, port=broker.port)


def test_payload_reads_back_with_an_independent_decoder() -> None:
    body = sp.encode(
        [(sp.Metric("a/b", sp.UINT64, 2**40), 7, True), (sp.Metric("t", sp.DOUBLE, 1.5), 8, False),
         (sp.Metric("s", sp.STRING, "é"), None, True), (sp.Metric("n", sp.DOUBLE, None), 9, True),
         (sp.Metric("ok", sp.BOOLEAN, True), 10, True)],
        seq=255, timestamp=1234,
    )  # fmt: skip
    p = wire.read(body)
    assert (p.seq, p.timestamp) == (255, 1234)
    a, t, s, n, ok = p.metrics
    assert (a.name, a.alias, a.datatype, a.value) == ("a/b", 7, wire.UINT64, 2**40)
    assert (t.name, t.alias, t.value) == (None, 8, 1.5)  # data messages: alias alone
    assert (s.name, s.alias, s.value) == ("s", None, "é")
    assert n.is_null and n.value is None and n.datatype == wire.DOUBLE
    assert ok.value is True and ok.datatype == wire.BOOLEAN
    assert wire.read(sp.encode([], seq=None)).seq is None  # NDEATH carries no seq


def test_birth_order_aliases_and_seq_wrap(broker: Mosquitto, tmp_path: Path) -> None:
    host = Host(broker.host, broker.port, "plant")

    async def main() -> None:
        node = _node(broker, tmp_path, Counting(), scan_interval_s=0.01)
        node.start()
        try:
            await wait_until_async(lambda: len(host.messages()) >= 300, timeout=60)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
        host.wait(lambda: host.messages("NDEATH"))  # the goodbye may still be on its way
        seen = host.messages()
        assert [s.kind for s in seen[:2]] == ["NBIRTH", "DBIRTH"]
        nbirth = seen[0].payload
        assert nbirth.seq == 0
        births = nbirth.by_name()
        assert births["bdSeq"].datatype == wire.UINT64
        assert births["Node Control/Rebirth"].value is False
        counter_alias = births["Counter"].alias
        assert seen[1].device == "pump-model" and seen[1].payload.seq == 1
        data = [s for s in seen if s.kind in ("NBIRTH", "DBIRTH", "NDATA")]
        seqs = [s.payload.seq for s in data]
        assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs)), seqs
        assert 255 in seqs and seqs[seqs.index(255) + 1] == 0  # the wrap
        ndata = data[2]
        assert ndata.kind == "NDATA"
        assert [(m.name, m.alias) for m in ndata.payload.metrics] == [(None, counter_alias)]
        # an orderly stop says goodbye with the birth's bdSeq
        ndeath = seen[-1]
        assert ndeath.kind == "NDEATH" and ndeath.payload.seq is None
        assert ndeath.payload.by_name()["bdSeq"].value == births["bdSeq"].value
    finally:
        host.close()


def test_rebirth_on_ncmd_keeps_the_session(broker: Mosquitto, tmp_path: Path) -> None:
    host = Host(broker.host, broker.port, "plant")

    async def main() -> EdgeNode:
        node = _node(broker, tmp_path, Counting(moving=False))
        node.start()
        try:
            await wait_until_async(lambda: host.messages("DBIRTH"))
            alias = host.messages("NBIRTH")[0].payload.by_name()["Node Control/Rebirth"].alias
            host.command("box1", [wire.write_metric(alias=alias, value=True)])  # by alias
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 2)
            await wait_until_async(lambda: len(host.messages("DBIRTH")) == 2)
            assert node.status()["counters"]["sessions"] == 1
        finally:
            await node.stop()
        return node

    try:
        asyncio.run(main())
        host.wait(lambda: host.messages("NDEATH"))
        first, second = (s.payload for s in host.messages("NBIRTH"))
        assert second.seq == 0
        assert second.by_name()["bdSeq"].value == first.by_name()["bdSeq"].value
        assert [s.kind for s in host.messages()].count("NDEATH") == 1  # only the goodbye
        assert host.messages("DBIRTH")[1].payload.seq == 1
    finally:
        host.close()


def test_state_gates_births(broker: Mosquitto, tmp_path: Path) -> None:
    host = Host(broker.host, broker.port, "plant")

    async def main() -> None:
        node = _node(broker, tmp_path, Counting(moving=False), primary_host_id="scada")
        node.start()
        try:
            await wait_until_async(lambda: "waiting" in node.status()["state"])
            await asyncio.sleep(1.0)
            assert host.messages("NBIRTH") == []  # no birth while the host is away
            t0 = int(time.time() * 1000)
            host.state(True, t0)
            await wait_until_async(lambda: host.messages("DBIRTH"))
            bdseq = host.messages("NBIRTH")[0].payload.by_name()["bdSeq"].value
            host.state(False, t0 - 10)  # older than the one in force: ignored
            await asyncio.sleep(0.5)
            assert host.messages("NDEATH") == []
            host.state(False, t0 + 1)
            await wait_until_async(lambda: host.messages("NDEATH"))
            assert host.messages("NDEATH")[0].payload.by_name()["bdSeq"].value == bdseq
            await asyncio.sleep(0.5)
            assert len(host.messages("NBIRTH")) == 1  # offline: no birth
            host.state(True, t0 + 2)
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 2)
            again = host.messages("NBIRTH")[1].payload
            assert again.seq == 0
            assert again.by_name()["bdSeq"].value == (bdseq + 1) % 256  # a new session
            # the goodbye went out once: the new session does not carry the old NDEATH
            deaths = [d.payload.by_name()["bdSeq"].value for d in host.messages("NDEATH")]
            assert deaths == [bdseq]
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        host.close()


def test_commands_obey_their_switches(broker: Mosquitto, tmp_path: Path) -> None:
    """DCMD Variant obeys mqtt.commands.select, NCMD Reload Models mqtt.commands.reload."""
    host = Host(broker.host, broker.port, "plant")
    asked: list[tuple[str, str | None]] = []
    reloads: list[int] = []

    async def select(app: str, pin: str | None) -> None:
        asked.append((app, pin))

    async def reload() -> None:
        reloads.append(1)

    async def main(obey: bool) -> dict[str, Any]:
        settings = SparkplugSettings(enabled=True, group_id="plant", edge_node_id="box1")
        controls = {"Node Control/Reload Models": Control("reload", reload)}
        node = EdgeNode(settings, link=_link(broker), source=Counting(False),
                        select=select, obey=lambda command: obey, controls=controls,
                        state_dir=tmp_path / "state")  # fmt: skip
        node.start()
        try:
            births = 1 if obey is False else 2  # the second node's own birth, not the first's
            await wait_until_async(lambda: len(host.messages("DBIRTH")) == births)
            nbirth = host.messages("NBIRTH")[-1].payload.by_name()
            assert nbirth["Node Control/Reload Models"].value is False
            alias = host.messages("DBIRTH")[-1].payload.by_name()["Variant"].alias
            host.command("box1", [wire.write_metric(alias=alias, value="auto")], "pump-model")
            host.command("box1", [wire.write_metric(name="Node Control/Reload Models",
                                                    value=True)])  # fmt: skip
            host.command("box1", [wire.write_metric(name="Node Control/Format Disk",
                                                    value=True)])  # fmt: skip
            await wait_until_async(lambda: node.status()["counters"]["commands"] == 3)
            await asyncio.sleep(0.2)
            return node.status()["counters"]
        finally:
            await node.stop()

    try:
        counters = asyncio.run(main(False))
        assert counters["refused"] == 2 and asked == [] and reloads == []  # switches off
        assert counters["command_errors"] == 1  # the control this node does not have
        counters = asyncio.run(main(True))
        assert counters["refused"] == 0
        assert asked == [("pump-model", None)]  # "auto": no pin
        assert reloads == [1]
    finally:
        host.close()


def test_broker_restart_is_a_new_session_with_the_next_bdseq(
    broker: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        node = _node(broker, tmp_path, Counting(moving=False))
        node.start()
        try:
            await wait_until_async(lambda: node.status()["state"] == "online")
            first = node.status()["bdseq"]
            await asyncio.to_thread(broker.stop)
            await wait_until_async(lambda: node.status()["state"] != "online")
            await asyncio.to_thread(broker.start)
            await wait_until_async(lambda: node.status()["counters"]["births"] == 2, timeout=30)
            status = node.status()
            assert status["state"] == "online" and status["counters"]["sessions"] == 2
            assert status["bdseq"] == (first + 1) % 256  # the Will of the new session
        finally:
            await node.stop()
        # a restarted daemon goes on from the persisted counter, never reusing a bdSeq
        again = _node(broker, tmp_path, Counting(moving=False))
        again.start()
        try:
            await wait_until_async(lambda: again.status()["state"] == "online")
            assert again.status()["bdseq"] == (first + 2) % 256
        finally:
            await again.stop()

    asyncio.run(main())


def test_the_will_of_every_session_carries_that_sessions_bdseq(
    broker: Mosquitto, tmp_path: Path
) -> None:
    # The link is cut twice (no DISCONNECT: the broker publishes the Will). Each NDEATH the
    # host reads carries the bdSeq of the NBIRTH before it, and each new session births
    # with the next one: the Will is built for every CONNECT, not once.
    host = Host(broker.host, broker.port, "plant")

    async def main() -> None:
        node = _node(broker, tmp_path, Counting(moving=False))
        node.start()
        try:
            for births in (1, 2):
                await wait_until_async(lambda n=births: len(host.messages("NBIRTH")) == n)
                node.conn.client.abort()  # as a network fault would
                await wait_until_async(lambda n=births: len(host.messages("NDEATH")) == n)
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 3)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
        host.wait(lambda: len(host.messages("NDEATH")) == 3)  # and the orderly goodbye
        births = [s.payload.by_name()["bdSeq"].value for s in host.messages("NBIRTH")]
        deaths = [s.payload.by_name()["bdSeq"].value for s in host.messages("NDEATH")]
        assert births == [births[0], (births[0] + 1) % 256, (births[0] + 2) % 256]
        assert deaths == births
        assert [s.kind for s in host.messages() if s.kind in ("NBIRTH", "NDEATH")] == [
            "NBIRTH", "NDEATH", "NBIRTH", "NDEATH", "NBIRTH", "NDEATH",
        ]  # fmt: skip
    finally:
        host.close()


def test_a_forged_far_future_state_is_not_believed(broker: Mosquitto, tmp_path: Path) -> None:
    """Issue 25, item 6: a STATE whose timestamp is far ahead of this box's clock (a forger
    on the broker, or a host with a wild clock) is ignored, so it can neither take the node
    offline nor shut out the real host's next STATE until a restart."""
    host = Host(broker.host, broker.port, "plant")

    async def main() -> dict[str, Any]:
        node = _node(broker, tmp_path, Counting(moving=False), primary_host_id="scada")
        node.start()
        try:
            now = int(time.time() * 1000)
            host.state(True, now)
            await wait_until_async(lambda: host.messages("DBIRTH"))
            ten_years = 10 * 365 * 24 * 3600 * 1000
            host.state(False, now + ten_years)  # forged: "offline", from the far future
            await asyncio.sleep(0.5)
            assert host.messages("NDEATH") == []  # not believed: the node stays born
            assert node.status()["state"] == "online"
            # The real host's next STATE still counts: it goes offline, then back.
            host.state(False, now + 1)
            await wait_until_async(lambda: host.messages("NDEATH"))
            host.state(True, now + 2)
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 2)
            return node.status()
        finally:
            await node.stop()

    try:
        status = asyncio.run(main())
        assert status["counters"]["state_ignored"] == 1
    finally:
        host.close()


def test_the_newest_state_timestamp_is_forgotten_with_the_session(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """Issue 25, item 6: the timestamp in force belongs to a session. After the link is
    cut, the new session takes the host's STATE even when it is older than the highest
    one the last session saw (a host whose clock was set back, a STATE a little ahead)."""
    host = Host(broker.host, broker.port, "plant")

    async def main() -> None:
        node = _node(broker, tmp_path, Counting(moving=False), primary_host_id="scada")
        node.start()
        try:
            now = int(time.time() * 1000)
            host.state(True, now + 30_000)  # 30 s ahead: within the tolerance
            await wait_until_async(lambda: host.messages("DBIRTH"))
            node.conn.client.abort()  # as a network fault would
            await wait_until_async(lambda: node.status()["state"] != "online")
            host.state(True, now + 1)  # the host again, its clock now right
            await wait_until_async(lambda: len(host.messages("NBIRTH")) == 2)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        host.close()


def test_rebirth_requests_are_coalesced(broker: Mosquitto, tmp_path: Path) -> None:
    """Issue 25, item 17: 500 Rebirth requests at once are obeyed (a birth follows the last
    of them) but not amplified: at most one birth per second, not 500 NBIRTHs and 500
    DBIRTHs per device."""
    host = Host(broker.host, broker.port, "plant")

    async def main() -> dict[str, Any]:
        node = _node(broker, tmp_path, Counting(moving=False))
        node.start()
        try:
            await wait_until_async(lambda: host.messages("DBIRTH"))
            alias = host.messages("NBIRTH")[0].payload.by_name()["Node Control/Rebirth"].alias
            started = time.monotonic()
            for _ in range(500):
                host.command("box1", [wire.write_metric(alias=alias, value=True)])
            await wait_until_async(lambda: node.status()["counters"]["rebirths"] == 500)
            sent_for = time.monotonic() - started
            await wait_until_async(lambda: len(host.messages("NBIRTH")) >= 2)
            await asyncio.sleep(1.5)  # a coalesced birth still due would be out by now
            births = len(host.messages("NBIRTH"))
            # the first birth, then at most one per second while the requests arrived
            assert 2 <= births <= 2 + int(sent_for) + 1, (births, sent_for)
            assert len(host.messages("DBIRTH")) == births  # one device: one DBIRTH each
            return node.status()
        finally:
            await node.stop()

    try:
        status = asyncio.run(main())
        assert status["counters"]["rebirths"] == 500
        assert status["counters"]["rebirths_coalesced"] >= 500 - 2 - 10
    finally:
        host.close()
