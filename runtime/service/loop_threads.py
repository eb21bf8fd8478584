"""Threads that run blocking calls for an event loop and hand the results back to it.

``loop.run_in_executor`` with a ThreadPoolExecutor costs, per call, a concurrent Future
(with its Condition), a wrapping asyncio Future and a chain of callbacks between them.
For a model that answers in a few tens of microseconds that bookkeeping cost more than
the inference (bench/README.md, "MQTT"). Here a call is one queue put on the way in and
one ``call_soon_threadsafe`` on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _succeed(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[Any], error: BaseException) -> None:
    if not fut.done():
        fut.set_exception(error)


def _cancel(fut: asyncio.Future[Any], _: object) -> None:
    fut.cancel()


class LoopThreads:
    """``threads`` daemon threads named ``{name}_{i}``. Create on the running loop."""

    def __init__(self, threads: int, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on one of the threads; the future resolves on the loop."""
        if self._closed:
            raise RuntimeError("the worker threads are shut down")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((fut, fn, args))
        return fut

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, fn, args = job
            try:
                result = fn(*args)
            except BaseException as e:  # handed to the caller, whatever it is
                self._post(_fail, fut, e)
            else:
                self._post(_succeed, fut, result)

    def _post(self, callback: Callable[[asyncio.Future[Any], Any], None], *args: Any) -> None:
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def shutdown(self) -> None:
        """Blocking: cancel the calls not yet started, let running ones finish, and end
        the threads."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._post(_cancel, job[0], None)
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
