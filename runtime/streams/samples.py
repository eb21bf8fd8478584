"""Reading one sample out of a sensor's payload, and assembling per-topic fields into one
sample vector. Pure: bytes in, floats (or a reason) out."""

from __future__ import annotations

import math
from collections.abc import Callable

import orjson

from runtime.config import StreamSettings


class BadSample(ValueError):
    """A payload that gives no usable number; ``kind`` is the counter it goes to:
    "non_numeric" (not a number, NaN or infinite), "missing" (pointer/metric absent),
    "late" (older than the newest sample), "future" (stamped further ahead of its arrival
    than ``max_ahead_s``) or "ignored" (a Sparkplug death or STATE)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadSample("non_numeric", f"{where} is {type(value).__name__}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise BadSample("non_numeric", f"{where} is {number}")
    return number


def _whole(payload: bytes) -> float:
    try:
        text = payload.decode().strip()
        return _number(float(text), "the payload")
    except (UnicodeDecodeError, ValueError):
        raise BadSample("non_numeric", f"payload {payload[:40]!r} is not a number") from None


def _pointer(pointer: str) -> Callable[[bytes], float]:
    # RFC 6901: "/a/0/b", with ~1 for "/" and ~0 for "~" inside a key.
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]

    def read(payload: bytes) -> float:
        try:
            doc: object = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BadSample("non_numeric", "payload is not JSON") from None
        for part in parts:
            if isinstance(doc, dict) and part in doc:
                doc = doc[part]
            elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
                doc = doc[int(part)]
            else:
                raise BadSample("missing", f"JSON pointer {pointer} not in the payload")
        return _number(doc, f"JSON pointer {pointer}")

    return read


def timestamp_reader(settings: StreamSettings) -> Callable[[bytes], float] | None:
    """The sample's own time in Unix seconds (``timestamp_pointer``; a value above 1e11 is
    taken as milliseconds), or None when the binding uses the arrival time."""
    if settings.timestamp_pointer is None:
        return None
    read = _pointer(settings.timestamp_pointer)

    def at(payload: bytes) -> float:
        value = read(payload)
        return value / 1000.0 if value > 1e11 else value

    return at


class SparkplugMetric:
    """A metric by name out of Sparkplug B payloads. Data messages usually carry the alias
    alone, so the alias is learnt from the births (NBIRTH/DBIRTH on the same edge node and
    device: subscribe to ``spBv1.0/<g>/+/<e>/<d>`` to see both). Deaths, STATE and
    commands carry no samples: ``ignored``."""

    DATA_KINDS = frozenset({"NBIRTH", "DBIRTH", "NDATA", "DDATA"})

    def __init__(self, name: str) -> None:
        self.name = name
        self.aliases: dict[tuple[str, ...], int] = {}

    def __call__(self, payload: bytes, topic: str = "") -> float:
        from runtime.sparkplug.payload import decode

        parts = topic.split("/")
        kind = parts[2] if len(parts) > 3 and parts[0] == "spBv1.0" else "NDATA"
        if kind not in self.DATA_KINDS:
            raise BadSample("ignored", f"a Sparkplug {kind} carries no sample")
        source = (parts[1], *parts[3:]) if len(parts) > 3 else ()
        try:
            _seq, metrics = decode(payload)
        except ValueError:
            raise BadSample("non_numeric", "payload is not Sparkplug B") from None
        alias = self.aliases.get(source)
        for m in metrics:
            if m.name == self.name:
                if m.alias is not None:
                    self.aliases[source] = m.alias
                return _number(m.value, f"metric {self.name!r}")
            if alias is not None and m.name is None and m.alias == alias:
                return _number(m.value, f"metric {self.name!r}")
        raise BadSample("missing", f"metric {self.name!r} not in the payload")


def reader(settings: StreamSettings) -> Callable[[bytes, str], float]:
    """The binding's ``(payload, topic) -> float``; raises BadSample."""
    if settings.value == "sparkplug":
        assert settings.metric is not None
        return SparkplugMetric(settings.metric)
    read: Callable[[bytes], float] = _whole
    if settings.value == "json":
        assert settings.pointer is not None
        read = _pointer(settings.pointer)

    def by_payload(payload: bytes, topic: str = "") -> float:
        return read(payload)

    return by_payload


class Fields:
    """Per-topic values -> one vector. A vector is complete when every field topic has
    sent a value since the last vector; a topic that sends twice before that replaces
    its earlier value, counted as ``overwritten`` (a late or missing partner)."""

    def __init__(self, topics: list[str]) -> None:
        self.index = {t: i for i, t in enumerate(topics)}
        self.values: list[float | None] = [None] * len(topics)
        self.overwritten = 0

    def add(self, topic: str, value: float) -> list[float] | None:
        i = self.index.get(topic)
        if i is None:
            raise BadSample("missing", f"topic {topic} is not one of the binding's fields")
        if self.values[i] is not None:
            self.overwritten += 1
        self.values[i] = value
        if any(v is None for v in self.values):
            return None
        row = [float(v) for v in self.values if v is not None]
        self.values = [None] * len(self.values)
        return row
