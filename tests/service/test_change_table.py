"""The change path (runtime/service/changes.py) as a table of callers: whoever asks, one
change at a time, in the order they asked; listeners hear each change start before its
work and end after it; a change that fails to load puts back what it set and lets the
next one in; /status's history keeps the last ``keep`` changes with who did what."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime.service.changes import Change, ChangePath
from tests.service.conftest import APP, TwoVersions, served

# (by, variant): an operator's pin through "http", "mqtt" or "sparkplug"; "missing" names
# a variant the package does not have, so its load fails.
Ask = tuple[str, str]


@pytest.mark.parametrize(
    ("keep", "asks", "history", "serving"),
    [
        pytest.param(32, [("http", "small")], [("http", "pin small", "ok")], "small",
                     id="one change"),
        pytest.param(
            32, [("http", "small"), ("mqtt", "large"), ("sparkplug", "small")],
            [("http", "pin small", "ok"), ("mqtt", "pin large", "ok"),
             ("sparkplug", "pin small", "ok")],
            "small", id="three callers at once: in turn, the last one stands",
        ),
        pytest.param(
            32, [("http", "small"), ("mqtt", "missing"), ("sparkplug", "auto")],
            [("http", "pin small", "ok"), ("mqtt", "pin missing", "failed"),
             ("sparkplug", "automatic", "ok")],
            "large", id="a failed change lets the next in",
        ),
        pytest.param(
            2, [("http", "small"), ("mqtt", "large"), ("sparkplug", "small")],
            [("mqtt", "pin large", "ok"), ("sparkplug", "pin small", "ok")],
            "small", id="history keeps the last ones",
        ),
    ],
)  # fmt: skip
def test_one_change_at_a_time(
    two_versions: TwoVersions, tmp_path: Path, keep: int, asks: list[Ask],
    history: list[tuple[str, str, str]], serving: str,
) -> None:  # fmt: skip
    with served(two_versions, tmp_path / "state") as s:
        changes = ChangePath(s.service, lambda: s.box, keep=keep)  # the table's own path
        events: list[tuple[str, str, str]] = []  # (what, by, why) in the order they happened

        def heard(c: Change) -> None:
            events.append(("end" if c.ended is not None else "start", c.by, c.why))

        changes.add_listener(heard)

        async def all_at_once() -> list[Any]:
            asked = [changes.pin(APP, variant, by) for by, variant in asks]
            return list(await asyncio.gather(*asked, return_exceptions=True))

        results = s.call(all_at_once)
        # Never two at once: each start is followed by its own end, in the order asked.
        whys = ["automatic" if v == "auto" else f"pin {v}" for _, v in asks]
        assert events == [(e, by, why) for (by, _), why in zip(asks, whys, strict=True)
                          for e in ("start", "end")]  # fmt: skip
        got = [(h["by"], h["why"], h["outcome"]) for h in changes.history()]
        assert got == history
        assert all(h["started"] <= h["ended"] for h in changes.history())
        assert changes.status()["running"] is None
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == sum(v == "missing" for _, v in asks)
        assert s.serving() == ("1.0.0", serving)
        # a failed pin put the previous one back: the box's pin is the last good ask
        good = [v for _, v in asks if v != "missing"]
        assert s.box.pin_for(APP).variant == (None if good[-1] == "auto" else good[-1])
