"""NCMD and DCMD: what a Sparkplug host may write to this node, and whether it is obeyed.

- NCMD ``Node Control/Rebirth`` = true: births again on the same session. Always obeyed:
  it changes nothing and the specification requires it.
- NCMD ``Node Control/<name>`` = true for each control the daemon hands in (``Reload
  Models``, ``Update Now``): obeyed only when its ``mqtt.commands`` switch is on, the same
  switch as the MQTT command of that name.
- DCMD ``Variant`` = a variant id or ``auto`` on an application's device: the HTTP admin
  route's swap, under ``mqtt.commands.select``. One switch per application at a time; a
  write that comes meanwhile replaces the one waiting (``variant_writes_replaced``), so
  the last write wins. Reload Models goes through the change path's reload, where a
  reload asked while one is under way joins it.

A refused or unknown write is counted (``refused``, ``command_errors``) and logged
through a ``LimitedLog`` (runtime.mqtt.limited_log): one line per kind of problem, then
at most one every 10 s with how many were not logged. The kind never holds a name the
sender chose, so a sender naming 20,000 different metrics grows neither the node's memory
nor the journal. A host has no reply channel in Sparkplug, so the metrics it sees next
(DDATA with the variant in force) are the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.mqtt.limited_log import LimitedLog
from runtime.sparkplug import payload as sp
from runtime.sparkplug.tracker import NODE

log = logging.getLogger(__name__)

REBIRTH = "Node Control/Rebirth"
VARIANT = "Variant"
NAME_SHOWN = 80  # characters of a sender's metric name that go into a log line
LINE_SHOWN = 400  # ... and of a whole line (an error may quote what the sender wrote)

Selector = Callable[[str, "str | None"], Awaitable[Any]]
"""``select(app, variant_or_None)``: the daemon's operator select (a pin kept by the box, then
the swap), the same the HTTP admin route makes."""


@dataclass(frozen=True)
class Control:
    """A ``Node Control/...`` metric: the ``mqtt.commands`` switch it obeys, and the action."""

    command: str
    action: Callable[[], Awaitable[Any]]


class NodeCommands:
    def __init__(
        self,
        *,
        name_of: Callable[[str, int], str | None],
        select: Selector,
        obey: Callable[[str], bool],
        controls: Mapping[str, Control],
        rebirth: Callable[[], None],
        changed: Callable[[], None],
        counters: dict[str, int],
    ) -> None:
        self.name_of, self.select, self.obey = name_of, select, obey
        self.controls = dict(controls)
        self.rebirth, self.changed, self.counters = rebirth, changed, counters
        self._log = LimitedLog(log)
        self._tasks: set[asyncio.Task[Any]] = set()
        # DCMD Variant: the write waiting per application, and those with a switch under way
        self._wanted: dict[str, str] = {}
        self._switching: set[str] = set()

    def control_metrics(self) -> list[sp.Metric]:
        """The writable node metrics for NBIRTH (all false: a write of true triggers)."""
        return [sp.Metric(n, sp.BOOLEAN, False) for n in (REBIRTH, *self.controls)]

    def _decode(self, body: bytes) -> list[sp.Received]:
        self.counters["commands"] += 1
        try:
            return sp.decode(body)[1]
        except ValueError as e:
            self._error("payload", f"ignored a command: {e}")
            return []

    def _named(self, device: str, metric: sp.Received) -> str | None:
        if metric.name:
            return metric.name
        return self.name_of(device, metric.alias) if metric.alias is not None else None

    def _error(self, kind: str, message: str) -> None:
        """``kind``: one of a fixed few (never a name the sender chose)."""
        self.counters["command_errors"] += 1
        self._log.note(kind, "sparkplug: %s", message[:LINE_SHOWN])

    def _refuse(self, command: str, what: str) -> None:
        self.counters["refused"] += 1
        self._log.note(f"refused_{command}", "sparkplug: refused %s: mqtt.commands.%s is false",
                       what, command.replace("-", "_"))  # fmt: skip

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_ncmd(self, body: bytes) -> None:
        for m in self._decode(body):
            name = self._named(NODE, m)
            if name == REBIRTH and m.value is True:
                self.counters["rebirths"] += 1
                self.rebirth()
            elif name in self.controls and m.value is True:
                control = self.controls[name]
                if not self.obey(control.command):
                    self._refuse(control.command, f"NCMD {name}")
                    continue
                self._spawn(self._run(name, control))
            else:
                self._error("unknown_ncmd", f"NCMD {_shown(name)} is not a control this node has")

    async def _run(self, name: str, control: Control) -> None:
        try:
            await control.action()
            log.info("sparkplug: NCMD %s done", name)
        except Exception as e:
            self._error(f"failed_{control.command}",
                        f"NCMD {name} failed: {getattr(e, 'message', e)}")  # fmt: skip
        self.changed()

    def on_dcmd(self, device: str, body: bytes) -> None:
        for m in self._decode(body):
            name = self._named(device, m)
            if name != VARIANT or not isinstance(m.value, str):
                what = f"DCMD {_shown(device)}/{_shown(name)}"
                self._error("unknown_dcmd", f"{what}: only Variant is writable")
            elif not self.obey("select"):
                self._refuse("select", f"DCMD Variant for {_shown(device)}")
            else:
                self._want(device, m.value)

    def _want(self, app: str, variant: str) -> None:
        """The last Variant written for ``app`` wins: one switch at a time per application,
        and a write that comes while one runs replaces the one waiting (a host that
        writes 500 times makes a few swaps, ending on its last write)."""
        if app in self._wanted:
            self.counters["variant_writes_replaced"] += 1
        self._wanted[app] = variant
        if app not in self._switching:
            self._switching.add(app)
            self._spawn(self._switch_until_done(app))

    async def _switch_until_done(self, app: str) -> None:
        try:
            while app in self._wanted:
                await self._switch(app, self._wanted.pop(app))
        finally:
            self._switching.discard(app)

    async def _switch(self, app: str, variant: str) -> None:
        pin = None if variant == "auto" else variant
        try:
            await self.select(app, pin)
            log.info("sparkplug: DCMD switched %s to %s", app, variant)
        except Exception as e:
            what = f"DCMD Variant {_shown(variant)} for {_shown(app)}"
            self._error("failed_select", f"{what} failed: {getattr(e, 'message', e)}")
        self.changed()  # report the variant in force at once


def _shown(name: str | None) -> str:
    """A sender's name as a log line shows it: quoted, and cut to ``NAME_SHOWN``."""
    if name is None:
        return "(no name)"
    return repr(name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN] + "...")
