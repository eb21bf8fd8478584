"""Sparkplug B payloads: our metric values <-> the protobuf of the 3.0 specification.

``sparkplug_b_pb2`` is generated from ``sparkplug_b.proto`` (written from the spec's
chapter 6; the official file is not on any registry). This module is the only one that
touches the generated classes: the node deals in ``Metric`` (name, datatype, value).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from runtime.sparkplug import sparkplug_b_pb2 as pb

Value = bool | int | float | str | None

# The datatypes the node publishes (spec 6.4.16); each maps to one ``oneof value`` field.
INT64: int = pb.Int64
UINT64: int = pb.UInt64
DOUBLE: int = pb.Double
BOOLEAN: int = pb.Boolean
STRING: int = pb.String

_FIELD: dict[int, str] = {
    pb.Int8: "int_value",
    pb.Int16: "int_value",
    pb.Int32: "int_value",
    pb.UInt8: "int_value",
    pb.UInt16: "int_value",
    pb.UInt32: "int_value",
    pb.Int64: "long_value",
    pb.UInt64: "long_value",
    pb.DateTime: "long_value",
    pb.Float: "float_value",
    pb.Double: "double_value",
    pb.Boolean: "boolean_value",
    pb.String: "string_value",
    pb.Text: "string_value",
    pb.UUID: "string_value",
}


@dataclass(frozen=True)
class Metric:
    """One metric as the node knows it; ``value`` None is published as ``is_null``."""

    name: str
    datatype: int
    value: Value


@dataclass(frozen=True)
class Received:
    """One metric of an incoming NCMD/DCMD: by name, by alias, or both."""

    name: str | None
    alias: int | None
    datatype: int | None
    value: Value


def now_ms() -> int:
    return int(time.time() * 1000)


def _set_value(m: Any, datatype: int, value: Value) -> None:
    if value is None:
        m.is_null = True
        return
    field = _FIELD.get(datatype)
    if field is None:
        raise ValueError(f"datatype {datatype} is not one the node publishes")
    if datatype == pb.Int64 and isinstance(value, int) and value < 0:
        value += 1 << 64  # spec 6.4.16: signed values travel as two's complement in uint64
    if field in ("int_value", "long_value"):
        value = int(value)
    elif field in ("float_value", "double_value"):
        value = float(value)
    setattr(m, field, value)


def encode(
    metrics: list[tuple[Metric, int | None, bool]],
    *,
    seq: int | None,
    timestamp: int | None = None,
) -> bytes:
    """A payload. Each entry is ``(metric, alias, with_name)``: births carry names and
    aliases, data messages the alias alone (spec 6.4.2). ``seq`` None: NDEATH has none."""
    ts = now_ms() if timestamp is None else timestamp
    payload = pb.Payload(timestamp=ts)
    if seq is not None:
        payload.seq = seq
    for metric, alias, with_name in metrics:
        m = payload.metrics.add()
        if with_name or alias is None:
            m.name = metric.name
        if alias is not None:
            m.alias = alias
        m.timestamp = ts
        m.datatype = metric.datatype
        _set_value(m, metric.datatype, metric.value)
    return payload.SerializeToString()


def decode(data: bytes) -> tuple[int | None, list[Received]]:
    """``(seq, metrics)`` of a command payload; raises ValueError on bytes that are not one."""
    payload = pb.Payload()
    try:
        payload.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"not a Sparkplug B payload: {e}") from None
    out = []
    for m in payload.metrics:
        which = m.WhichOneof("value")
        value: Value = None if m.is_null or which is None else getattr(m, which)
        if isinstance(value, bytes):
            value = None  # no command of ours takes bytes
        out.append(
            Received(
                name=m.name if m.HasField("name") else None,
                alias=m.alias if m.HasField("alias") else None,
                datatype=m.datatype if m.HasField("datatype") else None,
                value=value,
            )
        )
    return (payload.seq if payload.HasField("seq") else None), out
