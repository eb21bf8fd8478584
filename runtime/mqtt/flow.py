"""Flow control for requests from the broker: MQTT v5 Receive Maximum, announced and kept.

A QoS 1 request stays unacknowledged until its reply is stored, so the broker counts it
against the Receive Maximum we announce on CONNECT for that whole time. Announcing one
queue's capacity (``receive_maximum``) means no QoS 1 request can find a queue full: a
backlog (a restarted broker delivering a persistent session, a burst) waits at the broker
instead of being answered "busy". QoS 0 requests are not counted by the broker; the
bridge gives them the same room, checked on arrival, and answers "busy" when it is taken.

A broker may send more than we announced anyway (Mosquitto 2.0.11 does, as
acknowledgements come back). ``ReceiveWindow`` keeps the promise on our side: past the
maximum it stops reading from the socket until enough requests are acknowledged, so TCP
holds the rest at the broker. A broker that keeps to the maximum never meets the hold.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.config import MqttSettings

RECEIVE_MAXIMUM_CAP = 65535  # the largest Receive Maximum MQTT v5 can announce


def receive_maximum(settings: MqttSettings) -> int:
    """QoS 1 requests the broker may have out to us unacknowledged: one queue's capacity."""
    return min(settings.queue_size, RECEIVE_MAXIMUM_CAP)


class ReceiveWindow:
    """Unacknowledged QoS 1/2 messages against ``maximum``; ``hold(True)`` stops reading
    from the broker, ``hold(False)`` goes on. Used on the event loop only."""

    def __init__(self, maximum: int, hold: Callable[[bool], None]) -> None:
        self.maximum = maximum
        self._hold = hold
        self._held = False
        self._unacked: set[int] = set()  # packet ids; a redelivery reuses its id
        self.overruns = 0  # times the broker sent past the maximum

    def received(self, mid: int, qos: int) -> None:
        """Before the message's handler runs (it may acknowledge at once)."""
        if qos == 0:
            return
        self._unacked.add(mid)
        if len(self._unacked) > self.maximum and not self._held:
            self.overruns += 1
            self._set(True)

    def acked(self, mid: int) -> None:
        self._unacked.discard(mid)
        if self._held and len(self._unacked) < self.maximum:
            self._set(False)

    def reset_hold(self) -> None:
        """A new connection reads (its CONNACK, at least) whatever the count."""
        self._held = False

    def _set(self, held: bool) -> None:
        self._held = held
        self._hold(held)

    @property
    def unacked(self) -> int:
        return len(self._unacked)
