"""Our MQTT v5 properties against paho's own class: same bytes, same errors, same text."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt._packet import DECODE_ERRORS
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from runtime.mqtt.properties import FastProperties, PublishProperties

# MQTT strings may not hold NUL, surrogates or U+FEFF (and paho refuses control characters).
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"), max_size=40
)
publish_fields = st.fixed_dictionaries(
    {},
    optional={
        "MessageExpiryInterval": st.integers(1, 2**32 - 1),
        "ContentType": text.filter(bool),
        "CorrelationData": st.binary(max_size=64),
        "ResponseTopic": text.filter(bool),
        "PayloadFormatIndicator": st.integers(0, 1),
        "TopicAlias": st.integers(1, 65535),
        "UserProperty": st.lists(st.tuples(text, text), min_size=1, max_size=4),
        "SubscriptionIdentifier": st.lists(st.integers(1, 268435455), min_size=1, max_size=3),
    },
)


def _fill(props: Properties, fields: dict[str, Any]) -> Properties:
    for name, value in fields.items():
        if isinstance(value, list):  # set one at a time, as paho's decoder does
            for item in value:
                setattr(props, name, item)
        else:
            setattr(props, name, value)
    return props


@settings(max_examples=200, deadline=None)
@given(publish_fields)
def test_fast_properties_pack_unpack_and_print_like_paho(fields: dict[str, Any]) -> None:
    theirs = _fill(Properties(PacketTypes.PUBLISH), fields)
    ours = _fill(FastProperties(PacketTypes.PUBLISH), fields)
    assert ours.pack() == theirs.pack()
    assert str(ours) == str(theirs)
    assert ours.json() == theirs.json()
    assert ours.isEmpty() == theirs.isEmpty() == (not fields)
    decoded_theirs = Properties(PacketTypes.PUBLISH)
    decoded_ours = FastProperties(PacketTypes.PUBLISH)
    assert decoded_ours.unpack(theirs.pack())[1] == decoded_theirs.unpack(theirs.pack())[1]
    assert decoded_ours.json() == decoded_theirs.json()
    decoded_ours.clear()
    assert decoded_ours.isEmpty() and decoded_ours.pack() == b"\x00"


@pytest.mark.parametrize(
    ("packet", "name", "value"),
    [
        (PacketTypes.PUBLISH, "NoSuchProperty", 1),  # unknown name
        (PacketTypes.PUBACK, "CorrelationData", b"x"),  # not allowed on this packet
        (PacketTypes.PUBLISH, "TopicAlias", 0),  # out of range
        (PacketTypes.PUBLISH, "PayloadFormatIndicator", 2),
        (PacketTypes.CONNECT, "ReceiveMaximum", 70000),
    ],
)
def test_fast_properties_refuse_what_paho_refuses(packet: int, name: str, value: Any) -> None:
    with pytest.raises(MQTTException) as theirs:
        setattr(Properties(packet), name, value)
    with pytest.raises(MQTTException) as ours:
        setattr(FastProperties(packet), name, value)
    assert str(ours.value) == str(theirs.value)


def test_a_repeated_single_property_is_malformed_for_both() -> None:
    packed = b"\x06" + b"\x03\x00\x01a" + b"\x03\x00\x01b"  # ContentType twice
    for cls in (Properties, FastProperties):
        with pytest.raises(MQTTException):
            cls(PacketTypes.PUBLISH).unpack(packed)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.integers(1, 2**32 - 1)),
    st.one_of(st.none(), text.filter(bool)),
    st.one_of(st.none(), st.binary(max_size=300)),
    st.lists(st.tuples(text, text), max_size=4),
)
def test_publish_properties_pack_exactly_as_paho_would(
    expiry: int | None, content_type: str | None, corr: bytes | None, user: list[Any]
) -> None:
    theirs = Properties(PacketTypes.PUBLISH)
    if expiry:
        theirs.MessageExpiryInterval = expiry
    if content_type:
        theirs.ContentType = content_type
    if corr is not None:
        theirs.CorrelationData = corr
    for pair in user:
        theirs.UserProperty = pair
    ours = PublishProperties(
        message_expiry=expiry, content_type=content_type, correlation_data=corr, user=user
    )
    assert ours.pack() == theirs.pack()
    assert str(ours) == str(theirs)


def test_publish_properties_set_later_are_packed_too() -> None:
    ours = PublishProperties(content_type="application/json")
    ours.ResponseTopic = "site/replies"  # not one of the four packed directly
    theirs = Properties(PacketTypes.PUBLISH)
    theirs.ContentType = "application/json"
    theirs.ResponseTopic = "site/replies"
    assert ours.pack() == theirs.pack()


def _outcome(cls: type[Properties], packet_type: int, buffer: bytes) -> Any:
    """What unpacking gives: the properties and length, or that paho would call the packet
    malformed (its decoders turn these errors into MalformedPacket)."""
    try:
        props, used = cls(packet_type).unpack(buffer)
    except DECODE_ERRORS:
        return "malformed"
    return props.json(), used


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from([PacketTypes.PUBLISH, PacketTypes.PUBACK, PacketTypes.CONNACK]),
    st.one_of(
        st.binary(max_size=64),
        # a plausible length, then property-shaped bytes: reaches far deeper than noise
        st.builds(
            lambda body, extra: bytes([len(body)]) + body + extra,
            st.lists(
                st.sampled_from([b"\x01", b"\x02", b"\x03", b"\x08", b"\x09", b"\x0b", b"\x26",
                                 b"\x23", b"\x00\x03abc", b"\x00\x01\x00", b"\xef\xbb\xbf",
                                 b"\x00\x02", b"\x80", b"\xff\xff\xff\x7f", b"\x00"]),
                max_size=12,
            ).map(b"".join),
            st.binary(max_size=8),
        ),
    ),
)  # fmt: skip
def test_fast_unpack_agrees_with_paho_on_any_bytes(packet_type: int, buffer: bytes) -> None:
    assert _outcome(FastProperties, packet_type, buffer) == _outcome(
        Properties, packet_type, buffer
    )


def test_fast_unpack_reads_only_the_properties_of_a_big_packet() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "site/replies"
    props.CorrelationData = b"42"
    packet = props.pack() + b"x" * 1_000_000  # the payload follows the properties
    ours, used = FastProperties(PacketTypes.PUBLISH).unpack(packet)
    assert used == len(props.pack())
    assert ours.ResponseTopic == "site/replies" and ours.CorrelationData == b"42"
