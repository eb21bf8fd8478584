"""The swap lock (runtime/service/swap_lock.py), as a table of callers: whoever asks, one
swap at a time, in the order they asked; listeners hear who holds it before its swap
starts; a swap that fails still lets the next one in; /status's history keeps the last
``keep`` swaps with who did what."""

from __future__ import annotations

import asyncio

import pytest

from runtime.service.swap_lock import SwapLock

Swap = tuple[str, str, bool]  # (by, app, fails)


@pytest.mark.parametrize(
    ("keep", "swaps", "history"),
    [
        pytest.param(32, [("fleet", "a", False)], [("fleet", "a")], id="one swap"),
        pytest.param(
            32, [("fleet", "a", False), ("governor", "a", False), ("operator", "b", False)],
            [("fleet", "a"), ("governor", "a"), ("operator", "b")],
            id="three callers at once: in turn",
        ),
        pytest.param(
            32, [("fleet", "a", True), ("governor", "a", False)],
            [("fleet", "a"), ("governor", "a")], id="a failed swap lets the next in",
        ),
        pytest.param(
            2, [("fleet", "a", False), ("governor", "a", False), ("operator", "b", False)],
            [("governor", "a"), ("operator", "b")], id="history keeps the last ones",
        ),
    ],
)  # fmt: skip
def test_one_swap_at_a_time(keep: int, swaps: list[Swap], history: list[tuple[str, str]]) -> None:
    async def main() -> tuple[list[tuple[str, str, str]], SwapLock, list[BaseException | None]]:
        lock = SwapLock(keep=keep)
        events: list[tuple[str, str, str]] = []  # (what, by, app) in the order they happened
        lock.add_listener(lambda by, app: events.append(("told", by, app)))

        async def swap(by: str, app: str, fails: bool) -> None:
            async with lock.hold(app, by):
                assert lock.holder == (by, app)
                events.append(("start", by, app))
                await asyncio.sleep(0.01)  # a swap takes a while: others must wait
                events.append(("end", by, app))
                if fails:
                    raise RuntimeError(f"{by}: the new variant did not load")

        results = await asyncio.gather(*(swap(*s) for s in swaps), return_exceptions=True)
        return events, lock, list(results)

    events, lock, results = asyncio.run(main())
    # Never two at once: each start is told first and followed by its own end.
    expected = [(e, by, app) for by, app, _ in swaps for e in ("told", "start", "end")]
    assert events == expected
    assert lock.holder is None
    assert [(h["by"], h["app"]) for h in lock.history] == history
    assert all(h["started"] <= h["ended"] for h in lock.history)
    failed = [str(r) for r in results if isinstance(r, BaseException)]
    assert failed == [f"{by}: the new variant did not load" for by, _, fails in swaps if fails]
