"""The worker threads' hand-back to the event loop (runtime/service/loop_threads.py), as a
table of cancellations: at shutdown the calls not yet started are cancelled and the
running ones finish and deliver; a caller that cancels a running call does not stop the
thread or break the loop; after shutdown a new call is refused with a plain error."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtime.errors import InvalidInput
from runtime.service.loop_threads import LoopThreads


def _refuse(why: str) -> None:
    raise InvalidInput(why)


class Gate:
    """Blocking jobs: each records that it started, then waits for ``open``."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started = threading.Semaphore(0)

    def job(self, value: int) -> int:
        self.started.release()
        assert self.open.wait(10), "the test never opened the gate"
        return value

    async def wait_started(self, n: int) -> None:
        for _ in range(n):
            assert await asyncio.to_thread(self.started.acquire, True, 10)


@pytest.mark.parametrize(
    ("threads", "calls", "finished", "cancelled"),
    [
        pytest.param(1, 1, [0], [], id="one running, none waiting"),
        pytest.param(1, 4, [0], [1, 2, 3], id="one running, three waiting"),
        pytest.param(2, 4, [0, 1], [2, 3], id="two running, two waiting"),
        pytest.param(3, 2, [0, 1], [], id="more threads than calls"),
    ],
)  # fmt: skip
def test_shutdown_cancels_waiting_calls_and_lets_running_ones_finish(
    threads: int, calls: int, finished: list[int], cancelled: list[int]
) -> None:
    gate = Gate()

    async def main() -> tuple[list[int], list[int]]:
        pool = LoopThreads(threads, "test")
        futures = [pool.run(gate.job, i) for i in range(calls)]
        await gate.wait_started(min(threads, calls))
        stopping = asyncio.create_task(asyncio.to_thread(pool.shutdown))
        await asyncio.sleep(0.05)  # shutdown has taken the waiting calls off the queue
        gate.open.set()
        await stopping
        await asyncio.sleep(0)  # the last hand-backs run on the loop
        done = [i for i, f in enumerate(futures) if f.done() and not f.cancelled()]
        gone = [i for i, f in enumerate(futures) if f.cancelled()]
        assert [futures[i].result() for i in done] == done
        return done, gone

    assert asyncio.run(main()) == (finished, cancelled)


@pytest.mark.parametrize(
    ("job", "outcome"),
    [
        pytest.param(lambda: 7, 7, id="a value"),
        pytest.param(lambda: 1 / 0, ZeroDivisionError, id="an exception, as it is"),
        pytest.param(lambda: _refuse("text past the context"),
                     (InvalidInput, "text past the context"), id="our own error, message intact"),
    ],
)  # fmt: skip
def test_what_a_call_hands_back(job: object, outcome: object) -> None:
    async def main() -> object:
        pool = LoopThreads(1, "test")
        try:
            return await pool.run(job)  # type: ignore[arg-type]
        except ZeroDivisionError as e:
            return type(e)
        except InvalidInput as e:
            return (type(e), e.message)
        finally:
            await asyncio.to_thread(pool.shutdown)

    assert asyncio.run(main()) == outcome


def test_a_caller_that_cancels_a_running_call_leaves_the_threads_serving() -> None:
    gate = Gate()

    async def main() -> int:
        pool = LoopThreads(1, "test")
        running = pool.run(gate.job, 1)
        await gate.wait_started(1)
        running.cancel()  # the caller gave up; the thread still runs the job
        gate.open.set()
        value = await pool.run(gate.job, 2)  # the same thread serves the next call
        await asyncio.to_thread(pool.shutdown)
        return value

    assert asyncio.run(main()) == 2


def test_a_call_after_shutdown_is_refused_plainly() -> None:
    async def main() -> None:
        pool = LoopThreads(2, "test")
        await asyncio.to_thread(pool.shutdown)
        with pytest.raises(RuntimeError, match="the worker threads are shut down"):
            pool.run(lambda: 1)

    asyncio.run(main())
