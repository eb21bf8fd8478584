"""MQTT v5 properties without paho's per-property table scans.

paho's ``Properties`` finds a property by scanning its whole name table, with a string
replace per name, on every attribute set, every unpacked property and every property in
``pack()``; it also rebuilds its lookup tables for each instance. With two packets in and
two out per request that came to about a third of the bridge's time (bench/README.md,
"MQTT"). Both classes here are real paho ``Properties`` (paho packs, logs and resends
them), with the lookups made by dictionary:

- ``FastProperties``: the same behaviour, checks and errors as paho's class (a test
  compares them on generated properties). ``install()`` makes paho decode incoming
  packets' properties with it.
- ``PublishProperties``: what the bridge sends (expiry, content type, correlation data,
  user pairs), packed directly; anything else set on it is packed by paho's own code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import paho.mqtt._packet as paho_packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_TABLES = Properties(PacketTypes.PUBLISH)
_IDENT = {name.replace(" ", ""): ident for name, ident in _TABLES.names.items()}
_NAME = {ident: name for name, ident in _TABLES.names.items()}
_MULTIPLE = frozenset(name for name, ident in _IDENT.items() if ident in (11, 38))
# Properties whose values paho range-checks: set through paho's own __setattr__.
_CHECKED = frozenset(
    {
        "ReceiveMaximum", "TopicAlias", "TopicAliasMaximum", "MaximumPacketSize",
        "SubscriptionIdentifier", "RequestResponseInformation", "RequestProblemInformation",
        "PayloadFormatIndicator",
    }
)  # fmt: skip
_FAST = frozenset(
    {"packetType", "MessageExpiryInterval", "ContentType", "CorrelationData", "UserProperty"}
)


class FastProperties(Properties):
    """paho's Properties with dictionary lookups and shared tables."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT.get(compressedName, -1)

    def getNameFromIdent(self, identifier: int) -> str | None:
        return _NAME.get(identifier)

    def allowsMultiple(self, compressedName: str) -> bool:
        return compressedName in _MULTIPLE

    def __setattr__(self, name: str, value: Any) -> None:
        name = name.replace(" ", "")
        ident = _IDENT.get(name)
        if ident is None or name in _CHECKED or isinstance(value, list):
            super().__setattr__(name, value)  # private fields, errors, range checks
            return
        if self.packetType not in self.properties[ident][1]:
            super().__setattr__(name, value)  # raises paho's "does not apply" error
            return
        if name in _MULTIPLE:
            value = [*vars(self).get(name, []), value]
        object.__setattr__(self, name, value)

    def clear(self) -> None:
        for name in [n for n in vars(self) if n in _IDENT]:
            delattr(self, name)

    def isEmpty(self) -> bool:
        return not any(n in _IDENT for n in vars(self))


def install() -> None:
    """Make paho decode incoming packets' properties with FastProperties (idempotent)."""
    paho_packet.Properties = FastProperties  # type: ignore[misc]


def _vbi(n: int) -> bytes:
    """MQTT variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


class PublishProperties(Properties):
    """PUBLISH properties: message expiry (s), content type, correlation data, user pairs."""

    # paho's tables, shared instead of rebuilt per instance (its methods read them).
    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(
        self,
        *,
        message_expiry: int | None = None,
        content_type: str | None = None,
        correlation_data: bytes | None = None,
        user: Iterable[tuple[str, str]] = (),
    ) -> None:
        # Not Properties.__init__ (per-instance tables) nor its validating __setattr__:
        # the values are ours and typed.
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        if message_expiry:
            object.__setattr__(self, "MessageExpiryInterval", int(message_expiry))
        if content_type:
            object.__setattr__(self, "ContentType", content_type)
        if correlation_data is not None:
            object.__setattr__(self, "CorrelationData", bytes(correlation_data))
        pairs = [(str(k), str(v)) for k, v in user]
        if pairs:
            object.__setattr__(self, "UserProperty", pairs)

    def pack(self) -> bytes:
        attrs: dict[str, Any] = vars(self)
        if not attrs.keys() <= _FAST:  # something else was set: paho's general packer
            return bytes(super().pack())
        # In paho's order (by its name table), so the bytes match paho's own packing.
        out = bytearray()
        if "MessageExpiryInterval" in attrs:
            out += b"\x02" + struct.pack("!I", attrs["MessageExpiryInterval"])
        if "ContentType" in attrs:
            out += b"\x03" + _utf8(attrs["ContentType"])
        if "CorrelationData" in attrs:
            data = attrs["CorrelationData"]
            out += b"\x09" + struct.pack("!H", len(data)) + data
        for key, value in attrs.get("UserProperty", ()):
            out += b"\x26" + _utf8(key) + _utf8(value)
        return _vbi(len(out)) + bytes(out)
