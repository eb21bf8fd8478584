"""One model's worker: a bounded admission count, a thread pool, optional micro-batching.

Native inference never runs on the event loop: every call goes to this worker's
threads (runtime.service.loop_threads). Admission is counted on the loop, so "queue full" is decided
without locks; a request whose caller gave up (timeout, disconnect) still holds its
place until its thread really finishes, so the bound is never exceeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.backends.base import Backend, GenerationChunk, GenerationRequest
from runtime.errors import Busy, HeadframeError, InferenceFailed, InvalidInput
from runtime.service.loop_threads import LoopThreads

log = logging.getLogger(__name__)

_END = object()
Prepare = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class WorkerConfig:
    queue_size: int = 64  # requests waiting beyond those running
    workers: int = 1  # threads running the backend
    max_batch: int = 1  # 1: no batching
    batch_wait_ms: float = 0.0


@dataclass
class _Pending:
    inputs: Mapping[str, np.ndarray]
    future: asyncio.Future[dict[str, np.ndarray]]

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def signature(self) -> tuple[Any, ...]:
        return tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(self.inputs.items()))


class ModelWorker:
    """Runs one loaded backend. Create on the event loop; ``close()`` before unloading."""

    def __init__(
        self, app: str, backend: Backend, config: WorkerConfig, *, batchable: bool = False
    ) -> None:
        self.app = app
        self.backend = backend
        threads = config.workers if getattr(backend, "thread_safe", False) else 1
        self.config = config
        self.threads = threads
        self._threads = LoopThreads(threads, f"hf-{app}")
        self._capacity = config.queue_size + threads
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop = asyncio.get_running_loop()
        self._batching = batchable and config.max_batch > 1
        self._queue: asyncio.Queue[_Pending] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if self._batching:
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._batch_loop(), name=f"batch-{app}-{i}")
                for i in range(threads)
            ]

    @property
    def depth(self) -> int:
        """Requests admitted and not yet finished (waiting or running)."""
        return self._inflight

    def _admit(self) -> None:
        if self._inflight >= self._capacity:
            raise Busy(
                f"{self.app}: {self._inflight} requests in flight, the queue is full; retry later",
                retry_after_s=1.0,
            )
        self._inflight += 1
        self._idle.clear()

    def _release(self, _: object = None) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    async def infer(
        self, inputs: Mapping[str, np.ndarray], prepare: Prepare | None = None
    ) -> dict[str, np.ndarray]:
        """Run one validated request on a worker thread. Busy when the queue is full.

        ``prepare`` (decoding pictures) runs on the worker thread too, before the backend,
        and inside the same admission: its errors reach the caller as they are."""
        self._admit()
        if self._queue is not None:
            fut: asyncio.Future[dict[str, np.ndarray]] = self._loop.create_future()
            fut.add_done_callback(self._release)
            if prepare is None:
                self._queue.put_nowait(_Pending(inputs, fut))
            else:  # batches group by shape, so the pictures are decoded before queueing
                ready = self._threads.run(prepare, inputs)
                ready.add_done_callback(lambda r: self._enqueue_prepared(r, fut))
        else:
            fut = self._threads.run(self._run, inputs, prepare)
            fut.add_done_callback(self._release)
        # shield: a caller that gives up must not free the slot while the thread still runs.
        return await asyncio.shield(fut)

    def _enqueue_prepared(
        self, ready: asyncio.Future[dict[str, np.ndarray]], fut: asyncio.Future[Any]
    ) -> None:
        if fut.done():
            return
        if ready.cancelled():
            fut.cancel()
        elif (error := ready.exception()) is not None:
            fut.set_exception(error)
        else:
            assert self._queue is not None
            self._queue.put_nowait(_Pending(ready.result(), fut))

    def _run(
        self, inputs: Mapping[str, np.ndarray], prepare: Prepare | None = None
    ) -> dict[str, np.ndarray]:
        if prepare is not None:
            inputs = prepare(inputs)
        try:
            return self.backend.infer(inputs)
        except InvalidInput:  # the request's own fault (e.g. a text past the context)
            raise
        except Exception as e:
            log.exception("%s: inference failed", self.app)
            raise InferenceFailed(f"{self.app}: the backend failed: {e}") from e

    async def _batch_loop(self) -> None:
        assert self._queue is not None
        wait_s = self.config.batch_wait_ms / 1000.0
        while True:
            items = [await self._queue.get()]
            deadline = self._loop.time() + wait_s
            while len(items) < self.config.max_batch:
                try:
                    items.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            groups: dict[tuple[Any, ...], list[_Pending]] = {}
            for item in items:
                groups.setdefault(item.signature(), []).append(item)
            for group in groups.values():
                await self._run_group(group)

    async def _run_group(self, group: list[_Pending]) -> None:
        if len(group) == 1:
            batch = dict(group[0].inputs)
        else:
            batch = {k: np.concatenate([p.inputs[k] for p in group]) for k in group[0].inputs}
        try:
            out = await self._threads.run(self._run, batch)
            total = sum(p.rows for p in group)
            if any(v.shape[:1] != (total,) for v in out.values()):
                raise InferenceFailed(f"{self.app}: batched outputs lost the batch axis")
        except InvalidInput as e:
            if len(group) > 1:  # one request's bad input must not fail the others
                for p in group:
                    await self._run_group([p])
                return
            if not group[0].future.done():
                group[0].future.set_exception(e)
            return
        except Exception as e:
            for p in group:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        start = 0
        for p in group:
            end = start + p.rows
            if not p.future.done():
                p.future.set_result({k: v[start:end] for k, v in out.items()})
            start = end

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream chunks from the backend's generator thread as they are produced."""
        self._admit()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        put: Callable[[Any], None] = queue.put_nowait

        def produce() -> None:
            try:
                for chunk in self.backend.generate(request):
                    if stop.is_set():
                        break
                    self._loop.call_soon_threadsafe(put, chunk)
            except HeadframeError as e:  # e.g. a prompt longer than the context: the caller's
                log.info("%s: generation refused: %s", self.app, e.message)
                self._loop.call_soon_threadsafe(put, e)
            except Exception as e:
                log.exception("%s: generation failed", self.app)
                self._loop.call_soon_threadsafe(put, e)
            finally:
                # A closed loop means nobody is listening any more.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(put, _END)

        fut = self._threads.run(produce)
        fut.add_done_callback(self._release)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, HeadframeError):
                    raise item
                if isinstance(item, Exception):
                    raise InferenceFailed(f"{self.app}: generation failed: {item}") from item
                yield item
        finally:
            stop.set()

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is in flight; False if ``timeout_s`` passed first."""
        if self._inflight == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        """Blocking: stop the batchers and wait for running threads. Call off the loop
        after drain(), then unload the backend."""
        for t in self._tasks:
            self._loop.call_soon_threadsafe(t.cancel)
        self._threads.shutdown()
