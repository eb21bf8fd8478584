"""Publishing: QoS 1 messages go through the store-and-forward buffer, in order.

Runs on the bridge's event loop. A QoS 1 message is written to the buffer first, then
handed to paho; the broker's PUBACK (paho's on_publish, on the same loop) deletes it.
While the broker is away messages only go to the buffer; on each connect everything not
yet handed to paho is replayed oldest first, the backlog paced at ``replay_rate_per_s``
so a returning broker is not flooded. Messages paho already holds are resent by paho
itself with their original packet ids, so they are not replayed twice. After a daemon
restart nothing is in paho's hands and the buffer replays all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from runtime.mqtt.buffer import BufferFull, Entry, StoreAndForward
from runtime.mqtt.connection import MqttConnection
from runtime.mqtt.properties import PublishProperties

log = logging.getLogger(__name__)

MAX_REPLAY_INFLIGHT = 256
FLUSH_S = 0.05  # acknowledged rows are deleted in batches this often
RETRY_S = 5.0  # after a failed replay


def publish_properties(props: dict[str, Any]) -> Properties | None:
    """paho Properties from the plain dict kept in the buffer (the fast path's
    PublishProperties, packed directly)."""
    if not props:
        return None
    return PublishProperties(
        message_expiry=props.get("message_expiry"),
        content_type=props.get("content_type"),
        correlation_data=props.get("correlation_data"),
        user=props.get("user") or (),
    )


def paho_properties(props: dict[str, Any]) -> Properties | None:
    """The same, built and packed by paho's own Properties (paho's own code paths)."""
    if not props:
        return None
    out = Properties(PacketTypes.PUBLISH)
    if props.get("message_expiry"):
        out.MessageExpiryInterval = int(props["message_expiry"])
    if props.get("content_type"):
        out.ContentType = props["content_type"]
    if props.get("correlation_data") is not None:
        out.CorrelationData = bytes(props["correlation_data"])
    pairs = [(str(k), str(v)) for k, v in props.get("user") or ()]
    if pairs:
        out.UserProperty = pairs
    return out


class Outbox:
    """Sends messages through ``conn``; QoS 1 ones are kept in ``buffer`` until acknowledged."""

    def __init__(
        self, conn: MqttConnection, buffer: StoreAndForward, *, replay_rate_per_s: float
    ) -> None:
        self.conn = conn
        self._properties = publish_properties if conn.fast_path else paho_properties
        self.buffer = buffer
        self.replay_interval = 1.0 / replay_rate_per_s
        self._mids: dict[int, int] = {}  # paho packet id -> buffer row id
        self._sent_upto = 0  # every row id <= this has been handed to paho
        self._backlog_upto = 0  # rows <= this were waiting when the broker came back
        self._online = False  # loop-side view: set by on_connected, in order with sends
        self._replaying = False
        self._wake = asyncio.Event()
        self._acked = asyncio.Event()
        self.broker_rejected = 0
        self.qos0_dropped = 0
        self.replayed = 0
        self._flush_due = False  # acknowledged rows' delete is scheduled
        self._commit_due = False  # staged rows' write is scheduled

    # --- called on the event loop ---------------------------------------------------

    def send(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
        buffered: bool = True,
    ) -> bool:
        """Publish, buffering QoS 1 messages. False when the message could not be kept
        (buffer full under reject_new, or QoS 0 while offline): already counted."""
        if qos == 0 or not buffered:
            if not self._online:
                self.qos0_dropped += qos == 0
                return False
            self.conn.publish(
                topic,
                payload,
                qos=qos,
                retain=retain,
                properties=self._properties(properties or {}),
            )
            return True
        try:
            entry = self.buffer.put(topic, payload, qos=qos, retain=retain, properties=properties)
        except BufferFull as e:
            log.warning("mqtt: reply to %s not kept: %s", topic, e.message)
            return False
        if not self._commit_due:  # one write for all the replies of this loop pass
            self._commit_due = True
            asyncio.get_running_loop().call_soon(self.commit)
        if self._online and not self._replaying:
            self._hand(entry)
        else:
            self._wake.set()
        return True

    def _hand(self, entry: Entry) -> None:
        info = self.conn.publish(
            entry.topic,
            entry.payload,
            qos=entry.qos,
            retain=entry.retain,
            properties=self._properties(entry.properties),
        )
        self._sent_upto = max(self._sent_upto, entry.id)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN: paho queued it and sends it after the reconnect.
            self._mids[info.mid] = entry.id
        else:
            log.warning("mqtt: paho refused message %d: %s", entry.id, info.rc)

    def on_ack(self, mid: int, reason: int) -> None:
        row = self._mids.pop(mid, None)
        if row is None:
            return  # status/info, or a row dropped meanwhile
        if reason >= 0x80:
            # The broker will refuse it again (ACL, quota): keeping it would block nothing
            # but would grow forever, so it is dropped and counted.
            self.broker_rejected += 1
            log.error("mqtt: the broker refused a reply (reason %#x); check its ACL", reason)
        self.buffer.ack(row)
        self._acked.set()
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        self.buffer.flush()

    def commit(self) -> None:
        """Write the staged replies to disk. Runs at the end of each loop pass that staged
        one, and before the connection sends any bytes (MqttConnection.before_send)."""
        self._commit_due = False
        self.buffer.commit()  # a failing disk is logged and counted there, not raised

    def on_connected(self) -> None:
        self._online = True
        self._replaying = True
        self._backlog_upto = self.buffer.last_id()
        self._wake.set()

    def on_disconnected(self) -> None:
        self._online = False

    @property
    def inflight(self) -> int:
        return len(self._mids)

    async def run(self) -> None:
        """The replay task: runs until cancelled, whatever the buffer's disk does."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._online:
                continue
            try:
                await self._replay()
            except Exception:
                # Still replaying (new replies wait behind the backlog, in order): try
                # again soon rather than leave everything unsent until a restart.
                log.exception("mqtt: replaying the buffer failed; trying again in %ss", RETRY_S)
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _replay(self) -> None:
        self._replaying = True
        try:
            while self._online:
                self.buffer.expire()
                rows = self.buffer.pending(after=self._sent_upto, limit=64)
                if not rows:
                    return
                for entry in rows:
                    while self._online and len(self._mids) >= MAX_REPLAY_INFLIGHT:
                        self._acked.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._acked.wait(), 1.0)
                    if not self._online:
                        return
                    self._hand(entry)
                    if entry.id <= self._backlog_upto:
                        self.replayed += 1
                        await asyncio.sleep(self.replay_interval)
        finally:
            if self._online and self.buffer.pending(after=self._sent_upto, limit=1):
                self._wake.set()  # more arrived meanwhile: stay in order, keep replaying
            elif self._online:
                self._replaying = False
