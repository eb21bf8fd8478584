"""One model's worker (runtime/service/worker.py), as tables: how many requests it admits
before it answers Busy (queue size plus the threads a backend may use), that a caller who
gives up keeps its place until its thread finishes, and how micro-batching groups
requests into the batches the backend sees while each caller gets its own rows back.

The backend is the real onnxruntime one on a real ONNX file; it waits at a gate the test
opens, so requests pile up exactly as they do behind a slow model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import numpy as np
import pytest

from runtime.backends.base import LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.catalog import ModelPackage
from runtime.errors import Busy
from runtime.service.worker import ModelWorker, WorkerConfig
from tests.support.serving_models import write_linear_package


class GatedBackend(OnnxBackend):
    """onnxruntime that waits at ``gate`` before each call and records the rows it got."""

    def __init__(self, thread_safe: bool) -> None:
        super().__init__()
        self.thread_safe = thread_safe
        self.gate = threading.Event()
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.calls.append(int(inputs["pixels"].shape[0]))
        assert self.gate.wait(30), "the test never opened the gate"
        return super().infer(inputs)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    return write_linear_package(tmp_path_factory.mktemp("store"))


def _backend(package: ModelPackage, thread_safe: bool = True) -> GatedBackend:
    backend = GatedBackend(thread_safe)
    backend.load(package.variants[0], LoadOptions(intra_op_threads=1, task="tensor"))
    return backend


def _rows(n: int, seed: int) -> dict[str, np.ndarray]:
    return {"pixels": np.random.default_rng(seed).uniform(0, 16, (n, 64)).astype(np.float32)}


async def _settle(worker: ModelWorker, backend: GatedBackend, running: int) -> None:
    """Until ``running`` calls have reached the backend (they wait at its gate)."""
    for _ in range(500):
        if len(backend.calls) >= running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(backend.calls)} calls reached the backend, not {running}")


@pytest.mark.parametrize(
    ("queue_size", "workers", "thread_safe", "sent", "served", "busy"),
    [
        pytest.param(0, 1, True, 3, 1, 2, id="no queue: only the running one"),
        pytest.param(2, 1, True, 5, 3, 2, id="queue of two behind one thread"),
        pytest.param(1, 3, True, 6, 4, 2, id="three threads for a thread-safe backend"),
        pytest.param(1, 3, False, 6, 2, 4, id="one thread for a backend that is not"),
        pytest.param(4, 2, True, 6, 6, 0, id="room for all"),
    ],
)  # fmt: skip
def test_admission(
    package: ModelPackage,
    queue_size: int,
    workers: int,
    thread_safe: bool,
    sent: int,
    served: int,
    busy: int,
) -> None:
    backend = _backend(package, thread_safe)

    async def main() -> tuple[int, list[str], int]:
        worker = ModelWorker("app", backend, WorkerConfig(queue_size=queue_size, workers=workers))
        tasks = [asyncio.create_task(worker.infer(_rows(1, i))) for i in range(sent)]
        await asyncio.sleep(0)  # every request has asked for admission
        await _settle(worker, backend, min(served, worker.threads))
        depth = worker.depth
        backend.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(worker.close)
        refused = [str(r) for r in results if isinstance(r, Busy)]
        ok = sum(isinstance(r, dict) for r in results)
        return ok, refused, depth

    ok, refused, depth = asyncio.run(main())
    assert (ok, len(refused), depth) == (served, busy, served)
    assert all("the queue is full; retry later" in r for r in refused)


def test_a_caller_that_gives_up_keeps_its_place_until_its_thread_finishes(
    package: ModelPackage,
) -> None:
    backend = _backend(package)

    async def main() -> None:
        worker = ModelWorker("app", backend, WorkerConfig(queue_size=0, workers=1))
        first = asyncio.create_task(worker.infer(_rows(1, 0)))
        await _settle(worker, backend, 1)
        first.cancel()  # the client went away; the backend still runs its request
        with pytest.raises(asyncio.CancelledError):
            await first
        with pytest.raises(Busy):
            await worker.infer(_rows(1, 1))
        backend.gate.set()
        assert await worker.drain(10)
        out = await worker.infer(_rows(1, 2))  # its place is free again
        assert out["probabilities"].shape == (1, 10)
        await asyncio.to_thread(worker.close)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("max_batch", "batchable", "rows", "batches"),
    [
        pytest.param(1, True, [1, 1, 1], [1, 1, 1], id="max_batch 1: no batching"),
        pytest.param(8, False, [1, 1, 1], [1, 1, 1], id="a model that cannot batch"),
        pytest.param(8, True, [1, 1, 1], [1, 2], id="the ones that wait go together"),
        pytest.param(2, True, [1, 1, 1, 1, 1], [1, 2, 2], id="never more than max_batch"),
        pytest.param(8, True, [2, 3, 4], [2, 7], id="requests of several rows"),
    ],
)  # fmt: skip
def test_micro_batching(
    package: ModelPackage, max_batch: int, batchable: bool, rows: list[int], batches: list[int]
) -> None:
    """The first request runs alone while the others queue behind it (the gate holds it);
    when it finishes, the queued ones go to the backend in batches of up to
    ``max_batch`` requests. Each caller gets exactly its own rows' answers."""
    backend = _backend(package, thread_safe=False)
    reference = OnnxBackend()
    reference.load(package.variants[0], LoadOptions(intra_op_threads=1, task="tensor"))
    config = WorkerConfig(queue_size=16, workers=1, max_batch=max_batch, batch_wait_ms=50.0)

    async def main() -> list[dict[str, np.ndarray]]:
        worker = ModelWorker("app", backend, config, batchable=batchable)
        first = asyncio.create_task(worker.infer(_rows(rows[0], 0)))
        await _settle(worker, backend, 1)
        rest = [asyncio.create_task(worker.infer(_rows(n, i + 1))) for i, n in enumerate(rows[1:])]
        await asyncio.sleep(0.01)
        backend.gate.set()
        out = await asyncio.gather(first, *rest)
        await asyncio.to_thread(worker.close)
        return out

    out = asyncio.run(main())
    assert backend.calls == batches
    for i, (n, got) in enumerate(zip(rows, out, strict=True)):
        want = reference.infer(_rows(n, i))["probabilities"]
        np.testing.assert_allclose(got["probabilities"], want, rtol=1e-5, atol=1e-6)
