"""InferenceService against real ONNX models: results, validation, back-pressure, hot swap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from runtime.catalog import Store
from runtime.config import ApplicationSettings
from runtime.errors import Busy, InferenceFailed, InvalidInput, ModelNotFound, NotReady
from runtime.service import Answer, InferenceService

APP = "part-id-reader"


def _direct(store: Path, variant: str, x: np.ndarray) -> np.ndarray:
    path = store / APP / "1.0.0" / "variants" / variant / "model.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["probabilities"], {"pixels": x})[0]  # type: ignore[no-any-return]


def _x(rows: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, (rows, 64)).astype(np.float32)


def test_infer_matches_direct_onnxruntime(store: Path, loader: Any) -> None:
    async def main() -> dict[str, np.ndarray]:
        service = InferenceService(loader)
        slot = await service.add(Store(store).load(APP))
        assert slot.variant.id == "large"  # loader's first variant in sorted order
        assert service.is_ready()
        answer = await service.infer(APP, {"pixels": _x()})
        assert (answer.version, answer.variant) == ("1.0.0", "large")  # who computed it
        await service.close()
        return answer.outputs

    out = asyncio.run(main())
    np.testing.assert_allclose(out["probabilities"], _direct(store, "large", _x()), rtol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "missing input 'pixels'"),
        ({"pixels": np.zeros((1, 64), np.float32), "extra": np.zeros(1)}, "unknown input 'extra'"),
        ({"pixels": np.zeros((1, 64), np.float64)}, "datatype FP64, the model expects FP32"),
        ({"pixels": np.zeros((1, 63), np.float32)}, "shape [1, 63], the model expects [-1, 64]"),
        ({"pixels": np.zeros((64,), np.float32)}, "shape [64]"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(
    store: Path, loader: Any, inputs: dict[str, np.ndarray], message: str
) -> None:
    async def main() -> None:
        service = InferenceService(loader)
        await service.add(Store(store).load(APP))
        with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
            await service.infer(APP, inputs)
        # and it keeps serving
        assert (await service.infer(APP, {"pixels": _x(1)})).outputs["probabilities"].shape == (
            1,
            10,
        )
        await service.close()

    asyncio.run(main())


def test_unknown_app_version_and_output(store: Path, loader: Any) -> None:
    async def main() -> None:
        service = InferenceService(loader)
        await service.add(Store(store).load(APP))
        with pytest.raises(ModelNotFound, match="no application 'nope'"):
            await service.infer("nope", {"pixels": _x()})
        with pytest.raises(ModelNotFound, match=r"serves version 1\.0\.0"):
            await service.infer(APP, {"pixels": _x()}, version="9")
        with pytest.raises(InvalidInput, match="unknown output 'logits'"):
            await service.infer(APP, {"pixels": _x()}, outputs=["logits"])
        snap = service.stats.snapshot()[APP]
        assert snap["requests"] == 2 and snap["errors"] == 2  # "nope" is counted under nope
        await service.close()
        with pytest.raises(NotReady):
            await service.infer(APP, {"pixels": _x()})

    asyncio.run(main())


def test_full_queue_answers_busy_and_recovers(store: Path, loader: Any) -> None:
    async def main() -> None:
        service = InferenceService(loader, queue_size=1, workers=1)
        await service.add(Store(store).load(APP))
        big = {"pixels": _x(20_000)}
        results = await asyncio.gather(
            *(service.infer(APP, big) for _ in range(20)), return_exceptions=True
        )
        busy = [r for r in results if isinstance(r, Busy)]
        ok = [r for r in results if isinstance(r, Answer)]
        assert len(ok) == 2 and len(busy) == 18  # one running + one waiting
        assert busy[0].retry_after_s > 0 and "queue is full" in str(busy[0])
        assert service.queue_depths()[APP] == 0
        await service.infer(APP, {"pixels": _x(1)})  # the queue empties and serves again
        await service.close()

    asyncio.run(main())


def test_hot_swap_under_load_fails_no_request(store: Path, loader: Any) -> None:
    expected = {v: _direct(store, v, _x(2)) for v in ("small", "large")}
    events: list[tuple[str, str]] = []

    async def main() -> tuple[int, list[tuple[str, Any]]]:
        service = InferenceService(loader, queue_size=256, workers=2)
        service.add_listener(lambda event, app: events.append((event, app)))
        package = Store(store).load(APP)
        first = await service.add(package)
        stop = asyncio.Event()
        seen: list[tuple[str, Any]] = []

        async def client() -> int:
            n = 0
            while not stop.is_set():
                answer = await service.infer(APP, {"pixels": _x(2)})
                seen.append((answer.variant, answer.outputs["probabilities"]))
                n += 1
            return n

        clients = [asyncio.create_task(client()) for _ in range(8)]
        for pin in ("small", "large", "small", None, "small"):
            await asyncio.sleep(0.05)
            await service.swap(APP, pin=pin)
        await asyncio.sleep(0.05)
        stop.set()
        counts = await asyncio.gather(*clients)  # any failed request raises here
        assert service.slot(APP).variant.id == "small"
        await asyncio.sleep(0.1)
        with pytest.raises(InferenceFailed, match="no model loaded"):
            first.loaded.backend.infer({"pixels": _x()})  # the old variant was unloaded
        await service.close()
        return sum(counts), seen

    total, seen = asyncio.run(main())
    assert total > 20
    assert {v for v, _ in seen} == {"small", "large"}  # both variants really served
    # Every answer names the variant that computed it, through every swap.
    assert all(np.allclose(out, expected[v], rtol=1e-5) for v, out in seen)
    assert events.count(("swapped", APP)) == 5 and events[0] == ("loaded", APP)


def test_failed_swap_keeps_the_old_variant(store: Path, loader: Any) -> None:
    async def main() -> None:
        service = InferenceService(loader)
        await service.add(Store(store).load(APP), pin="small")
        with pytest.raises(KeyError, match="no variant 'missing'"):
            await service.swap(APP, pin="missing")
        assert service.slot(APP).variant.id == "small"
        await service.infer(APP, {"pixels": _x()})
        await service.close()

    asyncio.run(main())


def test_micro_batching_gives_each_caller_its_own_rows(store: Path, loader: Any) -> None:
    settings = {APP: ApplicationSettings(name=APP, max_batch=8, batch_wait_ms=20)}

    async def main() -> list[dict[str, np.ndarray]]:
        service = InferenceService(loader, app_settings=settings)
        await service.add(Store(store).load(APP))
        answers = await asyncio.gather(
            *(service.infer(APP, {"pixels": _x(1 + i % 3, seed=i)}) for i in range(16))
        )
        await service.close()
        return [a.outputs for a in answers]

    outs = asyncio.run(main())
    for i, out in enumerate(outs):
        np.testing.assert_allclose(
            out["probabilities"], _direct(store, "large", _x(1 + i % 3, seed=i)), rtol=1e-5
        )


def test_mixed_datatypes_round_trip(store: Path, loader: Any) -> None:
    inputs = {
        "half": np.array([[0.5, -1.25, 3.0]], np.float16),
        "text": np.array(["héllo".encode()], dtype=object),
        "flag": np.array([True]),
        "count": np.array([[1, -(2**40)]], np.int64),
    }

    async def main() -> dict[str, np.ndarray]:
        service = InferenceService(loader)
        await service.add(Store(store).load("echo"))
        answer = await service.infer("echo", inputs)
        await service.close()
        return answer.outputs

    out = asyncio.run(main())
    for name, value in inputs.items():
        assert out[f"{name}_out"].dtype == value.dtype
        assert out[f"{name}_out"].tolist() == value.tolist()


def test_close_right_after_a_swap_waits_for_the_old_variant_and_unloads_it(
    store: Path, loader: Any
) -> None:
    async def main() -> None:
        service = InferenceService(loader, queue_size=8, workers=1)
        first = await service.add(Store(store).load(APP), pin="large")
        running = asyncio.create_task(service.infer(APP, {"pixels": _x(200_000)}))
        while service.queue_depths()[APP] == 0:
            await asyncio.sleep(0.001)
        await service.swap(APP, pin="small")  # the old variant still has a request running
        await service.close()
        answer = await running  # finished on the old variant, not cut off
        assert answer.variant == "large" and answer.outputs["probabilities"].shape == (200_000, 10)
        with pytest.raises(InferenceFailed, match="no model loaded"):
            first.loaded.backend.infer({"pixels": _x()})  # unloaded before close returned

    asyncio.run(main())
