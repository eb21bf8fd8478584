"""The Receive Maximum kept on our side: a broker that sends past it is not read from
until enough requests are acknowledged (tests/mqtt/test_hardening.py shows it against
Mosquitto 2.0.11, which overruns it)."""

from __future__ import annotations

from runtime.config import MqttSettings
from runtime.mqtt.flow import ReceiveWindow, receive_maximum


def test_receive_maximum_is_the_queue_capacity_within_mqtt_bounds() -> None:
    assert receive_maximum(MqttSettings(queue_size=64)) == 64
    assert receive_maximum(MqttSettings(queue_size=100_000)) == 65535


def test_reads_are_held_past_the_maximum_and_released_below_it() -> None:
    holds: list[bool] = []
    w = ReceiveWindow(2, holds.append)
    w.received(1, 1)
    w.received(2, 1)
    w.received(3, 0)  # QoS 0 is not counted
    w.received(2, 1)  # a redelivery under the same packet id counts once
    assert holds == [] and w.unacked == 2
    w.received(4, 1)  # the broker overran what we announced
    assert holds == [True] and w.overruns == 1
    w.acked(1)
    assert holds == [True]  # still at the maximum
    w.acked(2)
    assert holds == [True, False] and w.unacked == 1
    w.reset_hold()
    w.received(5, 1)
    w.received(6, 1)
    assert holds == [True, False, True] and w.overruns == 2
