"""The Sparkplug B 3.0 edge node: births, data and commands over its own MQTT session.

Sparkplug needs Clean Start with session expiry 0 and NDEATH as the Will, the bridge a
persistent session with ``status`` as its Will, hence a session of its own; it is the one
session class all MQTT users share (runtime.mqtt.connection: back-off with jitter, the
refusal table, log-once diagnostics, TLS and credentials). Each session:

1. ``bdSeq`` = the persisted counter + 1 (mod 256), taken when the Will is built, which
   the connection does for every CONNECT it is about to send (an attempt that finds no
   broker takes none); NDEATH carrying it is the Will.
2. CONNECT (MQTT v5, Clean Start, no session expiry), then subscribe to NCMD, DCMD and,
   with a primary host, ``spBv1.0/STATE/<host>``.
3. Without a primary host, or once its STATE says ``online``: NBIRTH (seq 0, the same
   bdSeq), then a DBIRTH per application. From then on every ``scan_interval_s`` the
   metrics are compared with what was sent and only changes go out (NDATA/DDATA), by
   alias; an application that appears gets a DBIRTH, one that goes a DDEATH.
4. NCMD and DCMD: commands.py (Rebirth on the same connection with the same bdSeq; the
   controls and the ``Variant`` write under their ``mqtt.commands`` switches). Rebirth
   requests are obeyed but coalesced: at most one birth per ``REBIRTH_EVERY_S``, the
   requests in between answered by one birth when that second is up.
5. The primary host going offline: NDEATH, disconnect, and a new session at once (next
   bdSeq) that waits for it to come back (spec 3.0, section 5.11). Which STATE counts:
   host_state.py (not older than the newest this session took, not far ahead of this
   box's clock).

Everything here runs on the event loop (the connection's callbacks included); nothing
here runs inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.config import MqttSettings, SparkplugSettings
from runtime.mqtt.connection import MqttConnection, Will
from runtime.sparkplug import payload as sp
from runtime.sparkplug.commands import Control, NodeCommands, Selector
from runtime.sparkplug.host_state import HostState
from runtime.sparkplug.tracker import NODE, Tracker

log = logging.getLogger(__name__)

GOODBYE_WAIT_S = 2.0  # how long stop() waits for the broker to take the NDEATH
REBIRTH_EVERY_S = 1.0  # at most one birth this often, however many Rebirth requests come


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
    """The edge node on ``link``'s broker (host, port, TLS, credentials, back-off bounds:
    see ``runtime.sparkplug.wiring.broker_link``), with a client id of its own."""

    def __init__(
        self,
        settings: SparkplugSettings,
        *,
        link: MqttSettings,
        source: MetricSource,
        select: Selector,
        obey: Callable[[str], bool],
        state_dir: Path,
        controls: Mapping[str, Control] | None = None,
        fast_path: bool | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
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
        self.counters = {k: 0 for k in ("sessions", "births", "ndata", "ddata", "dbirth",
                                        "ddeath", "rebirths", "rebirths_coalesced",
                                        "commands", "refused", "command_errors",
                                        "variant_writes_replaced", "state_ignored")}  # fmt: skip
        self.host_state = HostState(settings.state_max_ahead_s, self.counters)
        self._born_at = -REBIRTH_EVERY_S  # monotonic time of the last NBIRTH
        self._rebirth_due: asyncio.TimerHandle | None = None
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
        self._scan: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # a goodbye before a new session
        self._ending = False  # this session said goodbye; the next one is on its way
        self._said_goodbye: int | None = None  # the bdSeq whose NDEATH was sent
        self._stopping = False
        # Built here, not at start: a password file that cannot be read is said at once.
        self.conn = MqttConnection(
            link,
            name="sparkplug",
            client_id=f"headframe-spb-{g}-{e}",
            clean_start=True,  # spec 3.0: a Sparkplug session never outlives its link
            will=self._will,
            subscriptions=self._subscriptions,
            on_connect=lambda _present: self._on_connected(),
            on_disconnect=self._on_disconnected,
            on_message=self._on_message,
            manual_ack=False,
            fast_path=fast_path,
        )

    # ---- life ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting; on the running event loop. Returns at once."""
        self.state = "connecting"
        self.conn.start()
        self._scan = asyncio.get_running_loop().create_task(self._scan_loop(), name="sparkplug")

    async def stop(self) -> None:
        """NDEATH (an orderly goodbye carries the same bdSeq the Will would), disconnect."""
        self._stopping = True
        self._cancel_rebirth()
        await self._goodbye()
        if self._scan is not None:
            self._scan.cancel()
            await asyncio.gather(self._scan, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.conn.stop()
        self.born = False
        self.state = "stopped"

    async def _goodbye(self) -> None:
        """NDEATH with this session's bdSeq, waited for until the broker has it: paho sends
        a QoS 1 message it has no PUBACK for again after a reconnect, and a stale NDEATH
        must not reach the next session."""
        if not self.conn.connected or self.bdseq is None or self._said_goodbye == self.bdseq:
            return
        self._said_goodbye = self.bdseq
        info = self.conn.publish(
            self.topics["NDEATH"], self._ndeath(), qos=1, retain=False, properties=None
        )
        deadline = time.monotonic() + GOODBYE_WAIT_S
        while not info.is_published() and self.conn.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _new_session(self) -> None:
        """The primary host went offline (spec 3.0, 5.11): NDEATH, then a new session at
        once, whose Will has the next bdSeq; it births when the host is back."""
        await self._goodbye()
        self.conn.reconnect_now()

    def _will(self) -> Will:
        """This session's Will, built by the connection for every CONNECT it sends: the
        next bdSeq, persisted first so that a restart never reuses it."""
        self.bdseq = self.bdseq_store.next()
        return Will(self.topics["NDEATH"], self._ndeath(), qos=1, retain=False)

    def _ndeath(self) -> bytes:
        return sp.encode([(sp.Metric("bdSeq", sp.UINT64, self.bdseq), None, True)], seq=None)

    def _subscriptions(self) -> list[str]:
        topics = [self.topics["NCMD"], self.dcmd_filter]
        if self.state_topic is not None:
            topics.append(self.state_topic)
        return topics

    # ---- the session (event loop) ---------------------------------------------------------
    def _on_connected(self) -> None:
        self.counters["sessions"] += 1
        self.born = self._ending = False
        self.host_online = self.state_topic is None
        self.host_state.reset()
        self._cancel_rebirth()  # this session births anyway
        if self.state_topic is None:
            self._birth()
        else:
            self.state = f"waiting for primary host {self.settings.primary_host_id}"
            log.info("sparkplug: connected; waiting for %s online", self.state_topic)

    def _on_disconnected(self) -> None:
        self.born = False
        self._cancel_rebirth()
        if not self._stopping:
            self.state = "disconnected"

    # ---- births and data (event loop) ----------------------------------------------------
    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _publish(self, topic: str, body: bytes) -> None:
        # Once stop() has queued NDEATH nothing may follow it: a host would read data from a
        # node it has just been told is dead. (Reports run on the loop, as stop() does.)
        if self._stopping:
            return
        self.conn.publish(topic, body, qos=0, retain=False, properties=None)

    def _node_metrics(self) -> list[sp.Metric]:
        return [
            sp.Metric("bdSeq", sp.UINT64, self.bdseq),
            *self.commands.control_metrics(),
            *self.source.node_metrics(),
        ]

    def _birth(self) -> None:
        """NBIRTH (seq 0) then a DBIRTH per application, on this connection (never on one
        that has said its goodbye)."""
        if self._ending:
            return
        self.tracker.forget_all()
        self.seq = 0
        entries = self.tracker.birth(NODE, self._node_metrics())
        self._publish(self.topics["NBIRTH"], sp.encode(entries, seq=0))
        self.counters["births"] += 1
        for device, metrics in self.source.devices().items():
            self._dbirth(device, metrics)
        self.born, self.state = True, "online"
        self._born_at = time.monotonic()
        log.info("sparkplug: NBIRTH as %s (bdSeq %d)", self.topics["NBIRTH"], self.bdseq)

    def _rebirth(self) -> None:
        """A host asked for a rebirth: same session, same bdSeq (spec 3.0: a rebirth is
        not a reconnect). Obeyed, never amplified: within ``REBIRTH_EVERY_S`` of the last
        birth the request waits for one birth at the end of that second, which answers
        every request made meanwhile."""
        if self._rebirth_due is not None:
            self.counters["rebirths_coalesced"] += 1
            return
        wait = self._born_at + REBIRTH_EVERY_S - time.monotonic()
        if wait > 0:
            self.counters["rebirths_coalesced"] += 1
            loop = asyncio.get_running_loop()
            self._rebirth_due = loop.call_later(wait, self._rebirth_now)
            return
        self._rebirth_now()

    def _rebirth_now(self) -> None:
        self._rebirth_due = None
        # Not before the primary host is online (nor on a session that said goodbye).
        if self.conn.connected and self.host_online:
            self._birth()

    def _cancel_rebirth(self) -> None:
        if self._rebirth_due is not None:
            self._rebirth_due.cancel()
            self._rebirth_due = None

    def _dbirth(self, device: str, metrics: list[sp.Metric]) -> None:
        entries = self.tracker.birth(device, metrics)
        topic = self.device_topic.format(kind="DBIRTH", device=device)
        self._publish(topic, sp.encode(entries, seq=self._next_seq()))
        self.counters["dbirth"] += 1

    async def _scan_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._scan_now.wait(), self.settings.scan_interval_s)
            self._scan_now.clear()
            if self.born and self.conn.connected:
                try:
                    self.scan()
                except Exception:
                    log.exception("sparkplug: reading the metrics failed")

    def scan(self) -> None:
        """Report by exception: the changes since the last message, devices born or dead."""
        changed = self.tracker.changes(NODE, self._node_metrics())
        if changed:
            self._publish(self.topics["NDATA"], sp.encode(changed, seq=self._next_seq()))
            self.counters["ndata"] += 1
        devices = self.source.devices()
        for device in self.tracker.born():
            if device not in devices:
                topic = self.device_topic.format(kind="DDEATH", device=device)
                self._publish(topic, sp.encode([], seq=self._next_seq()))
                self.tracker.forget(device)
                self.counters["ddeath"] += 1
        for device, metrics in devices.items():
            if self.tracker.needs_birth(device, metrics):
                self._dbirth(device, metrics)
                continue
            changed = self.tracker.changes(device, metrics)
            if changed:
                topic = self.device_topic.format(kind="DDATA", device=device)
                self._publish(topic, sp.encode(changed, seq=self._next_seq()))
                self.counters["ddata"] += 1

    # ---- incoming (event loop) -----------------------------------------------------------
    def _on_message(self, msg: paho.MQTTMessage) -> None:
        topic, body = msg.topic, bytes(msg.payload)
        if topic == self.state_topic:
            self._on_state(body)
        elif topic == self.topics["NCMD"]:
            self.commands.on_ncmd(body)
        elif topic.startswith(self.dcmd_filter[:-1]):
            self.commands.on_dcmd(topic.rsplit("/", 1)[1], body)

    def _on_state(self, body: bytes) -> None:
        online = self.host_state.read(body)
        if online is None:
            return
        self.host_online = online
        if online and not self.born:
            self._birth()
        elif not online and self.born:
            log.warning("sparkplug: primary host %s went offline; new session",
                        self.settings.primary_host_id)  # fmt: skip
            # No data and no birth on this session from here on: the host is told the node
            # is dead. The next session reads the retained STATE again.
            self.born, self._ending = False, True
            task = asyncio.get_running_loop().create_task(self._new_session())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ---- visible -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        session = self.conn.status()
        state = self.state
        if state in ("connecting", "disconnected") and session["last_error"]:
            state = f"{state}: {session['last_error']}"  # why, for the status page
        return {
            "state": state,
            "group_id": self.settings.group_id,
            "edge_node_id": self.settings.edge_node_id,
            "primary_host_id": self.settings.primary_host_id,
            "primary_host_online": self.host_online,
            "broker": session["broker"],
            "bdseq": self.bdseq,
            "seq": self.seq,
            "devices": sorted(self.tracker.born()),
            "counters": dict(self.counters),
            "session": session,
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
