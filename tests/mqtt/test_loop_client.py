"""LoopClient's buffered reader: one ``recv`` fills a buffer that paho's packet reader is
served from, so packets split across reads, or many in one read, must still come out whole
and in order, whatever the cut points and however many length bytes a packet has; and a
send that fails must close the connection through paho, keeping QoS 1 messages for the
reconnect."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from runtime.mqtt.loop_client import LoopClient


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 127, n >> 7
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def _publish(topic: str, payload: bytes) -> bytes:
    """One MQTT v5 PUBLISH, QoS 0, no properties."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + _varint(0) + payload
    return b"\x30" + _varint(len(body)) + body


def _reader() -> tuple[LoopClient, socket.socket, socket.socket, list[tuple[str, bytes]]]:
    """A client reading from one end of a socket pair; the test writes to the other."""
    client = LoopClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    got: list[tuple[str, bytes]] = []

    def on_message(c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        got.append((msg.topic, bytes(msg.payload)))

    client.on_message = on_message
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # as reconnect() leaves it; only the reader is exercised here
    return client, ours, theirs, got


def _drain(client: LoopClient) -> None:
    """Read until the buffer is empty, as the socket driver does; stop if paho closed the
    connection (a packet it could not parse)."""
    for _ in range(10_000):
        client.loop_read()
        if not client.buffered() or client._sock is None:
            return
    raise AssertionError("the reader stopped taking bytes from its buffer")


def _chunks(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        yield data[a:b]


# Payload sizes across the 1-, 2- and 3-byte remaining-length encodings.
_messages = st.lists(
    st.tuples(
        st.sampled_from(["a/b", "headframe/site/node/models/app/infer", "x"]),
        st.one_of(
            st.binary(max_size=120),
            st.binary(min_size=120, max_size=400),
            st.integers(16_380, 17_000).map(lambda n: bytes(n % 251 for n in range(n))),
        ),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(messages=_messages, cuts=st.lists(st.integers(0, 1 << 20), max_size=8))
def test_messages_arrive_whole_and_in_order_however_the_bytes_are_cut(
    messages: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    client, ours, theirs, got = _reader()
    try:
        stream = b"".join(_publish(t, p) for t, p in messages)
        for chunk in _chunks(stream, cuts):
            theirs.sendall(chunk)
            _drain(client)
        assert got == messages
        assert not client.buffered()
    finally:
        theirs.close()
        ours.close()


def test_a_send_the_peer_refuses_closes_the_connection_through_paho() -> None:
    client, ours, theirs, _ = _reader()
    closed: list[Any] = []
    client.on_disconnect = lambda c, u, flags, rc, props: closed.append(rc)
    try:
        client._state = paho._ConnectionState.MQTT_CS_CONNECTED
        theirs.close()  # the broker is gone: the next send fails (EPIPE)
        client.publish("t", b"reply", qos=1)  # gathered, not yet sent
        assert client.flush_writes() is True  # nothing left to send: the bytes are dropped
        assert closed, "on_disconnect was not called"
        assert client.socket() is None
        # The QoS 1 message stays in paho's session, to go again after the reconnect.
        assert len(client._out_messages) == 1
    finally:
        ours.close()
