"""NCMD and DCMD as a host (or anyone who may publish on the node's command topics) sends
them, fed straight to the node's command handler: what a sender controls never grows the
node's memory or its log."""

from __future__ import annotations

import logging
import tracemalloc

import pytest

from runtime.sparkplug.commands import Control, NodeCommands
from tests.support import sparkplug_wire as wire

NAMES = 20_000


async def _never() -> None:
    raise AssertionError("no command may run with every switch off")


def _commands(counters: dict[str, int]) -> NodeCommands:
    async def select(app: str, pin: str | None) -> None:
        raise AssertionError("no DCMD may run with every switch off")

    return NodeCommands(
        name_of=lambda device, alias: None,
        select=select,
        obey=lambda command: False,  # every mqtt.commands switch off
        controls={"Node Control/Reload Models": Control("reload", _never)},
        rebirth=lambda: None,
        changed=lambda: None,
        counters=counters,
    )


def test_distinct_metric_names_grow_neither_memory_nor_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 25, item 7: 20,000 NCMD and 20,000 DCMD writes, each naming a metric of its
    own (1 KB names), with every command switch off. The node once kept every name to log
    it once (+87 MB for 20,000); now its log is bounded like the bridge's reject log."""
    counters = dict.fromkeys(("commands", "refused", "command_errors", "rebirths"), 0)
    commands = _commands(counters)
    pad = "x" * 1000
    ncmd = [wire.write([wire.write_metric(name=f"Node Control/{i}{pad}", value=True)])
            for i in range(NAMES)]  # fmt: skip
    dcmd = [wire.write([wire.write_metric(name=f"{i}{pad}", value="int8")]) for i in range(NAMES)]
    refused = wire.write([wire.write_metric(name="Node Control/Reload Models", value=True)])
    caplog.set_level(logging.WARNING, logger="runtime.sparkplug")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, d in zip(ncmd, dcmd, strict=True):
            commands.on_ncmd(n)
            commands.on_dcmd("pump-model", d)
            commands.on_ncmd(refused)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert counters["commands"] == 3 * NAMES
    assert counters["command_errors"] == 2 * NAMES and counters["refused"] == NAMES
    assert grown < 256 * 1024, f"the command handler kept {grown} bytes"
    # one line per kind (unknown NCMD, unknown DCMD, refused reload), not one per name
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert any("mqtt.commands.reload is false" in line for line in lines)
