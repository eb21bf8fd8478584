"""Reading samples (number, JSON pointer, Sparkplug metric, per-topic fields) and the
windows they fill: bad input is a counted reason, never an exception that escapes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from runtime.config import StreamSettings
from runtime.service import InferenceService
from runtime.sparkplug import payload as sp
from runtime.streams.binding import Binding, ShapeMismatch, fit_shape
from runtime.streams.samples import BadSample, Fields, reader
from runtime.streams.window import Windower
from tests.support.loaders import ort_loader
from tests.support.stream_models import write_peak_package


def _settings(**kw: object) -> StreamSettings:
    base: dict[str, object] = {"name": "s", "app": "a", "subscribe": ["t"], "size": 4,
                               "publish": "r"}  # fmt: skip
    return StreamSettings(**(base | kw))  # type: ignore[arg-type]


def test_readers() -> None:
    number = reader(_settings())
    assert number(b" 1.5\n", "t") == 1.5
    with pytest.raises(BadSample) as e:
        number(b"abc", "t")
    assert e.value.kind == "non_numeric"
    with pytest.raises(BadSample):
        number(b"nan", "t")
    pointer = reader(_settings(value="json", pointer="/vib/x~1y"))
    assert pointer(b'{"vib": {"x/y": -2}}', "t") == -2.0
    with pytest.raises(BadSample) as e:
        pointer(b'{"vib": {}}', "t")
    assert e.value.kind == "missing"
    with pytest.raises(BadSample) as e:
        pointer(b'{"vib": {"x/y": "high"}}', "t")
    assert e.value.kind == "non_numeric"


def test_sparkplug_metric_learns_its_alias_from_the_birth() -> None:
    metric = reader(_settings(value="sparkplug", metric="Temp"))
    other = sp.Metric("Other", sp.DOUBLE, 1.0)
    birth = sp.encode([(other, 2, True), (sp.Metric("Temp", sp.DOUBLE, 70.0), 3, True)], seq=1)
    assert metric(birth, "spBv1.0/g/DBIRTH/e/kiln") == 70.0
    data = sp.encode([(other, 2, False), (sp.Metric("Temp", sp.DOUBLE, 71.5), 3, False)], seq=2)
    assert metric(data, "spBv1.0/g/DDATA/e/kiln") == 71.5  # by alias alone
    with pytest.raises(BadSample) as e:  # another device's alias 3 is not ours
        metric(data, "spBv1.0/g/DDATA/e/other")
    assert e.value.kind == "missing"
    with pytest.raises(BadSample) as e:
        metric(sp.encode([], seq=3), "spBv1.0/g/DDEATH/e/kiln")
    assert e.value.kind == "ignored"
    with pytest.raises(BadSample) as e:
        metric(b"\xff\xff not protobuf", "plant/x")
    assert e.value.kind == "non_numeric"


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


def test_binding_counts_late_samples_and_uses_the_sensors_clock(tmp_path: Path) -> None:
    """A binding fed directly (no broker) into a real service and model: samples carry
    their own time, one is late; the window's time range is the sensor's, and the late
    sample is counted, not used."""
    published: list[tuple[str, bytes]] = []
    package = write_peak_package(tmp_path / "store", app="peak", window=3)

    async def main() -> Binding:
        service = InferenceService(ort_loader, workers=1)
        await service.add(package)

        async def infer(app: str, inputs: Any) -> Any:
            return await service.infer(app, inputs, protocol="stream")

        settings = _settings(app="peak", value="json", pointer="/v", timestamp_pointer="/t",
                             size=3)  # fmt: skip
        binding = Binding(settings, infer=infer, slot=service.slot,
                          publish=lambda t, b, q, r: published.append((t, b)))  # fmt: skip
        try:
            assert binding.check() is None
            t0 = 1_700_000_000
            arrived = t0 + 5.0  # a sample's own time is believed up to max_ahead_s ahead
            for t, v in [(t0, 1), (t0 + 1, -7), (t0 - 1, 50), ((t0 + 2) * 1000, 3)]:  # ms last
                binding.on_sample("t", b'{"t": %r, "v": %d}' % (t, v), at=arrived)
            binding.on_sample("t", b'{"v": 4}', at=arrived)  # no time: missing
            for _ in range(100):
                if published:
                    break
                await asyncio.sleep(0.02)
        finally:
            await service.close(drain_timeout_s=5)
        return binding

    binding = asyncio.run(main())
    assert binding.counters["late"] == 1 and binding.counters["missing"] == 1
    doc = orjson.loads(published[0][1])
    assert (doc["window"]["first_at"], doc["window"]["last_at"]) == (1_700_000_000, 1_700_000_002)
    assert doc["outputs"]["peak"] == [[7.0]]  # max |x| of 1, -7, 3: the late 50 is not in it


def test_settings_refuse_streams_without_mqtt_duplicates_and_bad_sparkplug_ids() -> None:
    from runtime.config import Settings

    one = {"name": "a", "app": "x", "subscribe": ["t"], "size": 4, "publish": "r"}
    with pytest.raises(ValueError, match=r"need an \[mqtt\] section"):
        Settings(streams=[one])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="names must be unique"):
        Settings(mqtt={}, streams=[one, one])  # type: ignore[arg-type, list-item]
    with pytest.raises(ValueError, match="must be a topic"):
        _settings(publish="plant/#")
    with pytest.raises(ValueError, match=r"must not contain \+ # /"):
        Settings(sparkplug={"enabled": True, "edge_node_id": "a/b"})  # type: ignore[arg-type]
