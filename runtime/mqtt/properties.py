"""MQTT v5 properties without paho's per-property table scans.

paho's ``Properties`` finds a property by scanning its whole name table, with a string
replace per name, on every attribute set, every unpacked property and every property in
``pack()``; it also rebuilds its lookup tables for each instance. With two packets in and
two out per request that came to about a third of the bridge's time (bench/README.md,
"MQTT"). Both classes here are real paho ``Properties`` (paho packs, logs and resends
them), with the lookups made by dictionary:

- ``FastProperties``: the same behaviour, checks and errors as paho's class (a test
  compares them on generated properties). ``install()`` (called by the daemon's start-up
  check, runtime.mqtt.paho_compat) makes paho decode incoming packets' properties with it.
- ``PublishProperties``: what the bridge sends (expiry, content type, correlation data,
  user pairs), packed directly; anything else set on it is packed by paho's own code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties, VariableByteIntegers, writeUTF

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

    def unpack(self, buffer: bytes | bytearray) -> tuple[FastProperties, int]:
        """paho's unpack, reading by offset: paho slices the rest of the packet (payload
        included) after every field, so its cost grew with the payload's size. Same
        values, same checks; a malformed buffer raises what paho's decoders turn into
        MalformedPacket."""
        self.clear()
        propslen, used = _read_vbi(buffer, 0)
        pos, left = used, propslen
        while left > 0:
            ident, n = _read_vbi(buffer, pos)
            pos += n
            left -= n
            kind = self.properties[ident][0]  # KeyError: an unknown property
            value, n = _read_value(buffer, pos, kind, left)
            pos += n
            left -= n
            name = _NAME[ident].replace(" ", "")
            if name not in _MULTIPLE and name in vars(self):
                raise MQTTException(f"Property '{name}' must not exist more than once")
            setattr(self, name, value)
        return self, propslen + used

    def isEmpty(self) -> bool:
        return not any(n in _IDENT for n in vars(self))


def _read_vbi(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """A variable byte integer at ``pos``: (value, bytes used); at most four bytes."""
    value, multiplier, used = 0, 1, 0
    while True:
        if used >= 4:
            raise MalformedPacket("Variable Byte Integer is more than four bytes long")
        if pos + used >= len(buf):
            raise MalformedPacket("Not enough data to decode Variable Byte Integer")
        digit = buf[pos + used]
        used += 1
        value += (digit & 127) * multiplier
        if not digit & 128:
            return value, used
        multiplier *= 128


def _read_utf8(buf: bytes | bytearray, pos: int, maxlen: int) -> tuple[str, int]:
    if maxlen < 2:
        raise MalformedPacket("Not enough data to read string length")
    (length,) = struct.unpack("!H", buf[pos : pos + 2])
    if length > maxlen - 2:
        raise MalformedPacket("Length delimited string too long")
    text = bytes(buf[pos + 2 : pos + 2 + length]).decode("utf-8")  # refuses surrogates
    if "\x00" in text:
        raise MalformedPacket("[MQTT-1.5.4-2] Null found in UTF-8 data")
    if "\ufeff" in text:
        raise MalformedPacket("[MQTT-1.5.4-3] U+FEFF in UTF-8 data")
    return text, length + 2


def _read_value(buf: bytes | bytearray, pos: int, kind: int, maxlen: int) -> tuple[Any, int]:
    """One property value of paho's type ``kind`` (an index into Properties.types)."""
    if kind == 0:  # Byte
        return buf[pos], 1
    if kind == 1:  # Two Byte Integer
        return struct.unpack("!H", buf[pos : pos + 2])[0], 2
    if kind == 2:  # Four Byte Integer
        return struct.unpack("!L", buf[pos : pos + 4])[0], 4
    if kind == 3:  # Variable Byte Integer
        return _read_vbi(buf, pos)
    if kind == 4:  # Binary Data
        if maxlen < 2:
            raise MalformedPacket("Not enough data to read binary data length")
        (length,) = struct.unpack("!H", buf[pos : pos + 2])
        if length > maxlen - 2:
            raise MalformedPacket("Length delimited binary data too long")
        return buf[pos + 2 : pos + 2 + length], length + 2
    if kind == 5:  # UTF-8 Encoded String
        return _read_utf8(buf, pos, maxlen)
    key, n = _read_utf8(buf, pos, maxlen)  # UTF-8 String Pair
    value, m = _read_utf8(buf, pos + n, maxlen - n)
    return (key, value), n + m


def install() -> None:
    """Make paho decode incoming packets' properties with FastProperties (idempotent).
    Rebinds a name in paho's private ``_packet`` module, process-wide: only the daemon
    calls it, and only on the tested paho version (runtime.mqtt.paho_compat)."""
    import paho.mqtt._packet as paho_packet  # absent before paho 2.2

    paho_packet.Properties = FastProperties  # type: ignore[misc]


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
            out += b"\x03" + writeUTF(attrs["ContentType"])
        if "CorrelationData" in attrs:
            data = attrs["CorrelationData"]
            out += b"\x09" + struct.pack("!H", len(data)) + data
        for key, value in attrs.get("UserProperty", ()):
            out += b"\x26" + writeUTF(key) + writeUTF(value)
        return bytes(VariableByteIntegers.encode(len(out)) + out)
