"""Reading samples (number, JSON pointer, Sparkplug metric, per-topic fields) and the
windows they fill: bad input is a counted reason, never an exception that escapes."""

from __future__ import annotations

import pytest

from runtime.config import StreamSettings
from runtime.sparkplug import payload as sp
from runtime.streams.binding import ShapeMismatch, fit_shape
from runtime.streams.samples import BadSample, Fields, reader
from runtime.streams.window import Windower


def _settings(**kw: object) -> StreamSettings:
    base: dict[str, object] = {"name": "s", "app": "a", "subscribe": ["t"], "size": 4,
                               "publish": "r"}  # fmt: skip
    return StreamSettings(**(base | kw))  # type: ignore[arg-type]


def test_readers() -> None:
    assert reader(_settings())(b" 1.5\n") == 1.5
    with pytest.raises(BadSample) as e:
        reader(_settings())(b"abc")
    assert e.value.kind == "non_numeric"
    with pytest.raises(BadSample):
        reader(_settings())(b"nan")
    pointer = reader(_settings(value="json", pointer="/vib/x~1y"))
    assert pointer(b'{"vib": {"x/y": -2}}') == -2.0
    with pytest.raises(BadSample) as e:
        pointer(b'{"vib": {}}')
    assert e.value.kind == "missing"
    with pytest.raises(BadSample) as e:
        pointer(b'{"vib": {"x/y": "high"}}')
    assert e.value.kind == "non_numeric"
    metric = reader(_settings(value="sparkplug", metric="Temp"))
    body = sp.encode([(sp.Metric("Temp", sp.DOUBLE, 71.5), 3, True)], seq=4)
    assert metric(body) == 71.5
    with pytest.raises(BadSample):
        metric(b"\xff\xff not protobuf")


def test_settings_refuse_a_reader_without_its_path() -> None:
    with pytest.raises(ValueError, match="pointer"):
        _settings(value="json")
    with pytest.raises(ValueError, match="metric"):
        _settings(value="sparkplug")
    with pytest.raises(ValueError, match="not both"):
        _settings(hop=2, window_s=1.0)


def test_fields_make_one_vector() -> None:
    f = Fields(["x", "y"])
    assert f.add("x", 1.0) is None
    assert f.add("x", 2.0) is None  # replaces the earlier x
    assert f.add("y", 3.0) == [2.0, 3.0]
    assert f.overwritten == 1


def test_count_windows_hop_and_time_windows() -> None:
    w = Windower(size=4, hop=2)
    out = [w.add(float(i), [float(i)]) for i in range(8)]
    got = [[r[0] for r in x.rows] for x in out if x]
    assert got == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    t = Windower(size=2, window_s=1.0)
    t.add(0.0, [1.0])
    assert t.tick(1.0) is None and t.short == 1  # one sample in the window: short
    t.add(1.1, [2.0])
    t.add(1.2, [3.0])
    window = t.tick(2.0)
    assert window is not None and window.rows == [[2.0], [3.0]]


def test_fit_shape() -> None:
    assert fit_shape((-1, 16), 16) == (1, 16)
    assert fit_shape((-1, -1, 2), 16) == (1, 8, 2)
    with pytest.raises(ShapeMismatch):
        fit_shape((-1, 16), 15)
