"""A Sparkplug B payload reader and writer written from the protobuf wire format, sharing
nothing with runtime/sparkplug (not its .proto, not the protobuf library): what the tests
check is what any host would decode.

Field numbers are those of the Sparkplug B 3.0 specification, section 6.4: Payload
(timestamp 1, metrics 2, seq 3), Metric (name 1, alias 2, timestamp 3, datatype 4,
is_null 7, int_value 10, long_value 11, float_value 12, double_value 13,
boolean_value 14, string_value 15).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

UINT64, DOUBLE, BOOLEAN, STRING = 8, 10, 11, 12


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in order."""
    out = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i : i + n], i + n
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} in field {number}")
        out.append((number, wire, value))
    return out


@dataclass
class WireMetric:
    name: str | None = None
    alias: int | None = None
    datatype: int | None = None
    is_null: bool = False
    value: Any = None


@dataclass
class WirePayload:
    timestamp: int | None = None
    seq: int | None = None
    metrics: list[WireMetric] = field(default_factory=list)

    def by_name(self) -> dict[str, WireMetric]:
        return {m.name: m for m in self.metrics if m.name is not None}


def read_metric(data: bytes) -> WireMetric:
    m = WireMetric()
    for number, _wire, raw in _fields(data):
        if number == 1:
            m.name = raw.decode()
        elif number == 2:
            m.alias = raw
        elif number == 4:
            m.datatype = raw
        elif number == 7:
            m.is_null = bool(raw)
        elif number in (10, 11):
            m.value = raw
        elif number == 12:
            m.value = struct.unpack("<f", raw)[0]
        elif number == 13:
            m.value = struct.unpack("<d", raw)[0]
        elif number == 14:
            m.value = bool(raw)
        elif number == 15:
            m.value = raw.decode()
    return m


def read(data: bytes) -> WirePayload:
    p = WirePayload()
    for number, _wire, raw in _fields(data):
        if number == 1:
            p.timestamp = raw
        elif number == 2:
            p.metrics.append(read_metric(raw))
        elif number == 3:
            p.seq = raw
    return p


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _put_varint(number << 3 | wire)


def _len(number: int, data: bytes) -> bytes:
    return _key(number, 2) + _put_varint(len(data)) + data


def write_metric(*, name: str | None = None, alias: int | None = None, value: Any) -> bytes:
    out = b""
    if name is not None:
        out += _len(1, name.encode())
    if alias is not None:
        out += _key(2, 0) + _put_varint(alias)
    if isinstance(value, bool):
        out += _key(4, 0) + _put_varint(BOOLEAN) + _key(14, 0) + _put_varint(int(value))
    elif isinstance(value, str):
        out += _key(4, 0) + _put_varint(STRING) + _len(15, value.encode())
    elif isinstance(value, int):
        out += _key(4, 0) + _put_varint(UINT64) + _key(11, 0) + _put_varint(value)
    return out


def write(metrics: list[bytes], *, timestamp: int = 0, seq: int | None = None) -> bytes:
    out = _key(1, 0) + _put_varint(timestamp)
    for m in metrics:
        out += _len(2, m)
    if seq is not None:
        out += _key(3, 0) + _put_varint(seq)
    return out
