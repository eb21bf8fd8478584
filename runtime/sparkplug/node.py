"""The Sparkplug B 3.0 edge node: one MQTT session of its own, births, data, commands.

Sparkplug needs Clean Start with session expiry 0 and NDEATH as the Will, the bridge a
persistent session with ``status`` as its Will, hence a second connection. Each session:

1. ``bdSeq`` = the persisted counter + 1 (mod 256); NDEATH carrying it is the Will.
2. CONNECT (MQTT v5, Clean Start, no session expiry), then subscribe to NCMD, DCMD and,
   with a primary host, ``spBv1.0/STATE/<host>``.
3. Without a primary host, or once its STATE says ``online``: NBIRTH (seq 0, the same
   bdSeq), then a DBIRTH per application. From then on every ``scan_interval_s`` the
   metrics are compared with what was sent and only changes go out (NDATA/DDATA), by
   alias; an application that appears gets a DBIRTH, one that goes a DDEATH.
4. NCMD and DCMD: commands.py (Rebirth on the same connection with the same bdSeq; the
   controls and the ``Variant`` write under their ``mqtt.commands`` switches).
5. The primary host going offline: NDEATH, disconnect, and a new session (next bdSeq)
   that waits for it to come back (spec 3.0, section 5.11).

paho runs on a thread per session (``client.loop``, no reconnect of its own); every
callback hops to the event loop, which owns all of the node's state. Nothing here runs
inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.config import SparkplugSettings
from runtime.sparkplug import payload as sp
from runtime.sparkplug.commands import Control, NodeCommands, Selector
from runtime.sparkplug.tracker import NODE, Tracker

log = logging.getLogger(__name__)


class MetricSource(Protocol):
    """What the node reports; both are called on the event loop."""

    def node_metrics(self) -> list[sp.Metric]:
        """The box's metrics (the node adds bdSeq and its controls)."""
        ...

    def devices(self) -> dict[str, list[sp.Metric]]:
        """One entry per application being served: its device metrics."""
        ...


class BdSeq:
    """The birth/death sequence number, persisted so a restart does not reuse one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def next(self) -> int:
        try:
            value = (int(self.path.read_text().strip()) + 1) % 256
        except (OSError, ValueError):
            value = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{value}\n")
        os.replace(tmp, self.path)
        return value


class EdgeNode:
    def __init__(
        self,
        settings: SparkplugSettings,
        *,
        host: str,
        port: int,
        source: MetricSource,
        select: Selector,
        obey: Callable[[str], bool],
        state_dir: Path,
        controls: Mapping[str, Control] | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.host, self.port = host, port
        self.source = source
        self.username, self.password = username, password
        self.bdseq_store = BdSeq(state_dir / "sparkplug-bdseq")
        g, e = settings.group_id, settings.edge_node_id
        self.topics = {
            kind: f"spBv1.0/{g}/{kind}/{e}" for kind in ("NBIRTH", "NDEATH", "NDATA", "NCMD")
        }
        self.device_topic = f"spBv1.0/{g}/{{kind}}/{e}/{{device}}"
        self.dcmd_filter = f"spBv1.0/{g}/DCMD/{e}/+"
        host_id = settings.primary_host_id
        self.state_topic = f"spBv1.0/STATE/{host_id}" if host_id else None
        self.tracker = Tracker()
        self.state = "stopped"
        self.bdseq: int | None = None
        self.seq = 0
        self.born = False
        self.host_online = self.state_topic is None
        self._host_ts = -1
        self.counters = {k: 0 for k in ("sessions", "births", "ndata", "ddata", "dbirth",
                                        "ddeath", "rebirths", "commands", "refused",
                                        "command_errors")}  # fmt: skip
        self._client: paho.Client | None = None
        self._scan_now = asyncio.Event()
        self.commands = NodeCommands(
            name_of=self.tracker.name_of,
            select=select,
            obey=obey,  # mqtt.commands.<name>, asked at each command
            controls=controls or {},
            rebirth=self._rebirth,
            changed=self._scan_now.set,
            counters=self.counters,
        )
        self._ended: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unsent_bdseq: int | None = None

    # ---- life ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sparkplug")

    async def stop(self) -> None:
        """NDEATH (an orderly goodbye carries the same bdSeq the Will would), disconnect."""
        self._stopping = True
        client = self._client
        if client is not None and self.bdseq is not None:
            info = client.publish(self.topics["NDEATH"], self._ndeath(), qos=1)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(info.wait_for_publish, 2.0)
            client.disconnect()
        if self._ended is not None:
            self._ended.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.state = "stopped"

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            connected = await self._session()
            if self._stopping:
                return
            delay = 0.2 if connected else min(delay * 2, self.settings.reconnect_max_s)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    def _ndeath(self) -> bytes:
        return sp.encode([(sp.Metric("bdSeq", sp.UINT64, self.bdseq), None, True)], seq=None)

    async def _session(self) -> bool:
        """One MQTT session, start to end; True when it got connected."""
        loop = asyncio.get_running_loop()
        # A CONNECT that never left (no TCP connection) used no bdSeq: keep it for the next.
        if self._unsent_bdseq is None:
            self.bdseq = self.bdseq_store.next()
        self._unsent_bdseq = None
        self.born, self.state = False, "connecting"
        self.host_online = self.state_topic is None
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"headframe-spb-{self.settings.group_id}-{self.settings.edge_node_id}",
            protocol=paho.MQTTv5,
        )
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls is not None:
            client.tls_set_context(self.tls)
        client.will_set(self.topics["NDEATH"], self._ndeath(), qos=1, retain=False)
        ended = asyncio.Event()
        connected = threading.Event()

        def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if rc.is_failure:
                log.warning("sparkplug: broker refused the connection: %s", rc)
                return
            connected.set()
            loop.call_soon_threadsafe(self._on_connected, c)

        def on_message(c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._on_message, c, msg.topic, bytes(msg.payload))

        client.on_connect = on_connect
        client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0  # spec 3.0: a Sparkplug session never outlives its link
        try:
            await asyncio.to_thread(
                client.connect, self.host, self.port, self.settings.keepalive,
                clean_start=True, properties=props,
            )  # fmt: skip
        except OSError as e:
            self.state = f"broker unreachable: {e}"
            self._unsent_bdseq = self.bdseq
            return False
        self._client, self._ended = client, ended
        halt = threading.Event()  # the pump's own flag: asyncio.Event is not thread-safe
        thread = threading.Thread(
            target=self._pump, args=(client, loop, ended, halt), name="sparkplug-mqtt",
            daemon=True,
        )  # fmt: skip
        thread.start()
        scan = loop.create_task(self._scan_loop(client), name="sparkplug-scan")
        try:
            await ended.wait()
        finally:
            halt.set()
            scan.cancel()
            self._client = None
            self.born = False
            with contextlib.suppress(Exception):
                client.disconnect()
            await asyncio.to_thread(thread.join, 5)
            if not self._stopping:
                self.state = "disconnected"
        return connected.is_set()

    def _pump(
        self,
        client: paho.Client,
        loop: asyncio.AbstractEventLoop,
        ended: asyncio.Event,
        halt: threading.Event,
    ) -> None:
        # paho's own loop_forever would reconnect with the old Will (and old bdSeq); this
        # one returns at the first error and the next session brings a new bdSeq.
        while not halt.is_set():
            if client.loop(timeout=0.1) != paho.MQTT_ERR_SUCCESS:
                break
        loop.call_soon_threadsafe(ended.set)

    # ---- births and data (event loop) ----------------------------------------------------
    def _on_connected(self, client: paho.Client) -> None:
        if client is not self._client:
            return
        self.counters["sessions"] += 1
        subs = [(self.topics["NCMD"], 1), (self.dcmd_filter, 1)]
        if self.state_topic is not None:
            subs.append((self.state_topic, 1))
        client.subscribe(subs)
        if self.state_topic is None:
            self._birth(client)
        else:
            self.state = f"waiting for primary host {self.settings.primary_host_id}"
            log.info("sparkplug: connected; waiting for %s online", self.state_topic)

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _publish(self, client: paho.Client, topic: str, body: bytes) -> None:
        # Once stop() has queued NDEATH nothing may follow it: a host would read data from a
        # node it has just been told is dead. (Reports run on the loop, as stop() does.)
        if self._stopping:
            return
        client.publish(topic, body, qos=0, retain=False)

    def _node_metrics(self) -> list[sp.Metric]:
        return [
            sp.Metric("bdSeq", sp.UINT64, self.bdseq),
            *self.commands.control_metrics(),
            *self.source.node_metrics(),
        ]

    def _birth(self, client: paho.Client) -> None:
        """NBIRTH (seq 0) then a DBIRTH per application, on this connection."""
        self.tracker.forget_all()
        self.seq = 0
        entries = self.tracker.birth(NODE, self._node_metrics())
        self._publish(client, self.topics["NBIRTH"], sp.encode(entries, seq=0))
        self.counters["births"] += 1
        for device, metrics in self.source.devices().items():
            self._dbirth(client, device, metrics)
        self.born, self.state = True, "online"
        log.info("sparkplug: NBIRTH as %s (bdSeq %d)", self.topics["NBIRTH"], self.bdseq)

    def _rebirth(self) -> None:
        # Same session, same bdSeq (spec 3.0: a rebirth is not a reconnect).
        if self._client is not None:
            self._birth(self._client)

    def _dbirth(self, client: paho.Client, device: str, metrics: list[sp.Metric]) -> None:
        entries = self.tracker.birth(device, metrics)
        topic = self.device_topic.format(kind="DBIRTH", device=device)
        self._publish(client, topic, sp.encode(entries, seq=self._next_seq()))
        self.counters["dbirth"] += 1

    async def _scan_loop(self, client: paho.Client) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._scan_now.wait(), self.settings.scan_interval_s)
            self._scan_now.clear()
            if self.born and client is self._client:
                try:
                    self.scan(client)
                except Exception:
                    log.exception("sparkplug: reading the metrics failed")

    def scan(self, client: paho.Client) -> None:
        """Report by exception: the changes since the last message, devices born or dead."""
        changed = self.tracker.changes(NODE, self._node_metrics())
        if changed:
            self._publish(client, self.topics["NDATA"], sp.encode(changed, seq=self._next_seq()))
            self.counters["ndata"] += 1
        devices = self.source.devices()
        for device in self.tracker.born():
            if device not in devices:
                topic = self.device_topic.format(kind="DDEATH", device=device)
                self._publish(client, topic, sp.encode([], seq=self._next_seq()))
                self.tracker.forget(device)
                self.counters["ddeath"] += 1
        for device, metrics in devices.items():
            if self.tracker.needs_birth(device, metrics):
                self._dbirth(client, device, metrics)
                continue
            changed = self.tracker.changes(device, metrics)
            if changed:
                topic = self.device_topic.format(kind="DDATA", device=device)
                self._publish(client, topic, sp.encode(changed, seq=self._next_seq()))
                self.counters["ddata"] += 1

    # ---- incoming (event loop) -----------------------------------------------------------
    def _on_message(self, client: paho.Client, topic: str, body: bytes) -> None:
        if client is not self._client:
            return  # a message of a session that has ended
        if topic == self.state_topic:
            self._on_state(client, body)
        elif topic == self.topics["NCMD"]:
            self._on_ncmd(client, body)
        elif topic.startswith(self.dcmd_filter[:-1]):
            self._on_dcmd(topic.rsplit("/", 1)[1], body)

    def _on_state(self, client: paho.Client, body: bytes) -> None:
        try:
            doc = orjson.loads(body)
            online, ts = doc["online"], int(doc.get("timestamp", 0))
            if not isinstance(online, bool):
                raise ValueError("online is not a boolean")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            log.warning("sparkplug: ignored a STATE message that is not 3.0 JSON: %s", e)
            return
        if ts < self._host_ts:
            return  # an older STATE than the one in force (spec 3.0: compare timestamps)
        self._host_ts = ts
        self.host_online = online
        if online and not self.born:
            self._birth(client)
        elif not online and self.born:
            log.warning("sparkplug: primary host %s went offline; new session",
                        self.settings.primary_host_id)  # fmt: skip
            client.publish(self.topics["NDEATH"], self._ndeath(), qos=1)
            self.born = False
            client.disconnect()  # the pump returns; the next session has a new bdSeq

    def _on_ncmd(self, client: paho.Client, body: bytes) -> None:
        self.commands.on_ncmd(body)

    def _on_dcmd(self, device: str, body: bytes) -> None:
        self.commands.on_dcmd(device, body)

    # ---- visible -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "group_id": self.settings.group_id,
            "edge_node_id": self.settings.edge_node_id,
            "primary_host_id": self.settings.primary_host_id,
            "primary_host_online": self.host_online,
            "broker": f"{self.host}:{self.port}",
            "bdseq": self.bdseq,
            "seq": self.seq,
            "devices": sorted(self.tracker.born()),
            "counters": dict(self.counters),
        }

    def metric_families(self) -> list[Metric]:
        """Prometheus families for /metrics (the daemon registers this source)."""
        messages = CounterMetricFamily(
            "headframe_sparkplug_messages",
            "Sparkplug messages published and commands received, by kind.",
            labels=["kind"],
        )
        for kind, n in sorted(self.counters.items()):
            messages.add_metric([kind], n)
        online = GaugeMetricFamily(
            "headframe_sparkplug_online",
            "1 while the edge node is born (NBIRTH sent).",
            value=int(self.born),
        )
        return [online, messages]
