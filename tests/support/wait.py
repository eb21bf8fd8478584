"""The one wait helper: poll a condition until it holds or the time is up.

A test that waits for something another process or thread does (a daemon swapping a
variant, a broker delivering, a host seeing a birth) polls a check and fails with what
it waited for, never sleeps a fixed time and hopes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _poll(check: Callable[[], T], what: str, timeout: float, deadline: float) -> T | None:
    """One look: ``check()``'s value if true, None to look again, AssertionError if the
    time is up."""
    value = check()
    if value:
        return value
    if time.monotonic() >= deadline:
        raise AssertionError(f"not within {timeout:g} s: {what}")
    return None


def wait_until(
    check: Callable[[], T], what: str = "the condition", timeout: float = 30.0,
    interval: float = 0.05,
) -> T:  # fmt: skip
    """``check()``'s first true value; AssertionError naming ``what`` after ``timeout`` s.
    An exception from ``check`` ends the wait (a check that may fail while the thing
    starts catches that itself)."""
    deadline = time.monotonic() + timeout
    while (value := _poll(check, what, timeout, deadline)) is None:
        time.sleep(interval)
    return value


def holds_within(check: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` s: for an assert with its own
    message, or a test that expects it not to."""
    try:
        wait_until(check, timeout=timeout, interval=interval)
    except AssertionError:
        return False
    return True


async def wait_until_async(
    check: Callable[[], T], what: str = "the condition", timeout: float = 30.0,
    interval: float = 0.05,
) -> T:  # fmt: skip
    """``wait_until`` for a test running on the event loop it waits on: the loop keeps
    turning between checks."""
    deadline = time.monotonic() + timeout
    while (value := _poll(check, what, timeout, deadline)) is None:
        await asyncio.sleep(interval)
    return value
