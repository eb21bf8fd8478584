"""A binding fed directly (no broker) into a real service and model, with a clock the test
holds: samples from the sensor's future, and what "stalled" means."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from runtime.config import StreamSettings
from runtime.service import InferenceService
from runtime.streams.binding import Binding
from tests.support.loaders import ort_loader
from tests.support.stream_models import write_peak_package

T0 = 1_700_000_000.0  # arrival times in these tests: Unix seconds
TEN_YEARS = 10 * 365 * 24 * 3600


def _settings(**kw: object) -> StreamSettings:
    base: dict[str, object] = {"name": "s", "app": "peak", "subscribe": ["t"], "size": 3,
                               "publish": "r", "value": "json", "pointer": "/v",
                               "timestamp_pointer": "/t", "stall_after_s": 10}  # fmt: skip
    return StreamSettings(**(base | kw))  # type: ignore[arg-type]


def _sample(t: float, v: float) -> bytes:
    return orjson.dumps({"t": t, "v": v})


def _run(tmp_path: Path, feed: Any, **kw: object) -> tuple[Binding, list[dict[str, Any]]]:
    """``feed(binding)`` on a binding over the real peak model; the results published."""
    published: list[dict[str, Any]] = []
    package = write_peak_package(tmp_path / "store", app="peak", window=3)

    async def main() -> Binding:
        service = InferenceService(ort_loader, workers=1)
        await service.add(package)

        async def infer(app: str, inputs: Any) -> Any:
            return await service.infer(app, inputs, protocol="stream")

        binding = Binding(_settings(**kw), infer=infer, slot=service.slot,
                          publish=lambda t, b, q, r: published.append(orjson.loads(b)))  # fmt: skip
        try:
            assert binding.check() is None
            feed(binding)
            for _ in range(100):
                if published or not binding._tasks:
                    break
                await asyncio.sleep(0.02)
            await asyncio.gather(*binding._tasks)
        finally:
            await service.close(drain_timeout_s=5)
        return binding

    return asyncio.run(main()), published


def test_a_sample_from_the_future_is_refused_not_made_the_newest(tmp_path: Path) -> None:
    """Issue 25, item 8: one sample stamped ten years ahead once made every later sample
    "late": the stream went silent. It is counted as ``future`` and left out."""

    def feed(b: Binding) -> None:
        b.on_sample("t", _sample(T0 - 3, 1), at=T0)
        b.on_sample("t", _sample(T0 + TEN_YEARS, 99), at=T0)  # forged, or a wild clock
        b.on_sample("t", _sample((T0 + 120) * 1000, 50), at=T0)  # ms, two minutes ahead
        b.on_sample("t", _sample(T0 - 2, -7), at=T0 + 1)
        b.on_sample("t", _sample(T0 + 30, 3), at=T0 + 2)  # 28 s ahead: within max_ahead_s

    binding, published = _run(tmp_path, feed)
    assert binding.counters["future"] == 2 and binding.counters["late"] == 0
    assert len(published) == 1
    assert published[0]["outputs"]["peak"] == [[7.0]]  # 1, -7, 3: neither 99 nor 50
    assert binding.status(T0 + 3)["counters"]["future"] == 2


def test_stalled_means_no_accepted_sample(tmp_path: Path) -> None:
    """Issue 25, item 8: /status said "not stalled" while every sample was refused. A
    stream is stalled when no sample was accepted for stall_after_s, however many bad
    ones arrive."""

    def feed(b: Binding) -> None:
        b.on_sample("t", _sample(T0, 1), at=T0)
        for i in range(1, 31):  # 30 s of samples that all count for nothing
            b.on_sample("t", _sample(T0 - 100, 5), at=T0 + i)  # late
            b.on_sample("t", b'{"t": %d, "v": "high"}' % (T0 + i), at=T0 + i)  # non_numeric
            b.on_sample("t", _sample(T0 + TEN_YEARS, 5), at=T0 + i)  # future

    binding, _ = _run(tmp_path, feed)
    assert binding.status(T0 + 5)["stalled"] is False
    status = binding.status(T0 + 30)
    assert status["stalled"] is True
    assert status["last_sample_at"] == T0  # the last sample accepted
    assert {k: status["counters"][k] for k in ("late", "non_numeric", "future")} == {
        "late": 30, "non_numeric": 30, "future": 30,
    }  # fmt: skip
