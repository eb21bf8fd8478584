"""Answering requests: reply messages through the outbox, the acknowledgement after them,
the same bytes again for a redelivered request, and the log of refused requests.

A reply goes to the job's reply topic, QoS 1 through the store-and-forward buffer, with
the request's Correlation Data and, from the service's answer, the version and variant
that computed it as user properties (and ``reload_ms`` when the request waited for its
idle-unloaded model to load again); a refusal names none.
A QoS 1 request is acknowledged only after its reply is staged (the buffer commits before
any byte is sent), so a daemon killed mid-request gets it again from its session.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from runtime.errors import HeadframeError
from runtime.mqtt.jobs import Job
from runtime.mqtt.limited_log import LimitedLog
from runtime.mqtt.redelivery import RedeliveryCache

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from runtime.mqtt.connection import MqttConnection
    from runtime.mqtt.outbox import Outbox
    from runtime.mqtt.ports import Answered

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"
REJECT_LOG_EVERY_S = 10.0  # at most one line per error code this often


class RejectLog:
    """Refused requests at INFO with their code and reason: the first of each code, then at
    most one line per code every ``every_s`` saying how many were not logged meanwhile (a
    sender repeating a bad request must not fill the journal; runtime.mqtt.limited_log)."""

    def __init__(self, every_s: float = REJECT_LOG_EVERY_S) -> None:
        self._log = LimitedLog(log, logging.INFO, every_s)

    @property
    def every_s(self) -> float:
        return self._log.every_s

    @every_s.setter
    def every_s(self, value: float) -> None:
        self._log.every_s = value

    def note(self, where: str, code: str, reason: str) -> None:
        self._log.note(code, "mqtt: rejected a request on %s: %s: %s", where, code, reason)


class Replies:
    """The bridge's ``Replier`` (runtime.mqtt.ports). ``bind`` gives it the connection and
    outbox when the bridge starts; ``counters`` are the bridge's."""

    def __init__(self, counters: Counter[str]) -> None:
        self._counters = counters
        self._conn: MqttConnection | None = None
        self._outbox: Outbox | None = None
        self.dedup: RedeliveryCache[Job] = RedeliveryCache()
        self.reject_log = RejectLog()

    def bind(self, conn: MqttConnection, outbox: Outbox) -> None:
        self._conn, self._outbox = conn, outbox

    def ack(self, job_or_msg: Job | paho.MQTTMessage) -> None:
        conn = self._conn
        if conn is not None and job_or_msg.qos > 0:
            conn.ack(job_or_msg.mid, job_or_msg.qos)
            if isinstance(job_or_msg, Job):
                for mid in job_or_msg.more_acks:
                    conn.ack(mid, job_or_msg.qos)

    def properties(self, job: Job, answer: Answered | None = None) -> dict[str, Any]:
        """The reply's properties: content type, correlation data, and who answered (the
        model version and variant that computed it, the reload wait) from ``answer``."""
        user: list[tuple[str, str]] = []
        if answer is not None:
            user = [("model_version", answer.version), ("variant", answer.variant)]
            if answer.reload_ms is not None:  # the request waited for its parked model
                user.append(("reload_ms", str(answer.reload_ms)))
        props: dict[str, Any] = {"content_type": CONTENT_TYPE, "user": user}
        if job.correlation is not None:
            props["correlation_data"] = job.correlation
        return props

    def send(self, job: Job, body: bytes, answer: Answered | None = None) -> None:
        assert self._outbox is not None
        props = self.properties(job, answer)
        job.replies.append((job.reply_to, body, props))
        if self._outbox.send(job.reply_to, body, qos=1, properties=props):
            self._counters["replies"] += 1
        else:
            self._counters["replies_dropped"] += 1

    def finish(self, job: Job, body: bytes | None = None, answer: Answered | None = None) -> None:
        if body is not None:
            self.send(job, body, answer)
        job.done = True
        self.ack(job)

    def rejected(self, job: Job, error: HeadframeError, *, count: bool = True) -> None:
        if count:
            self._counters[f"error_{error.code}"] += 1
        self.reject_log.note(job.topic or job.route.name, error.code, error.message)

    def answer_duplicate(self, dup: Job) -> bool:
        """A QoS 1 redelivery (DUP set) of a request answered lately: send the same reply
        bytes again instead of computing it twice."""
        assert dup.key is not None and self._outbox is not None
        original = self.dedup.get(dup.key)
        if original is None:
            return False
        self._counters["duplicates"] += 1
        if not original.done:
            # Still running: its reply will come, and its acknowledgement covers this copy
            # too (a broker that redelivers under another packet id gets that one acked).
            if dup.mid != original.mid and dup.mid not in original.more_acks:
                original.more_acks.append(dup.mid)
            return True
        for topic, body, props in list(original.replies):
            self._outbox.send(topic, body, qos=1, properties=props)
        self.ack(dup)
        return True
