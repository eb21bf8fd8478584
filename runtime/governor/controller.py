"""``Governor``: samples on a worker thread every ``period_s``, decides (policy.py), and
acts on the event loop through the daemon's hot swap.

Acting: a step down finds, among the served applications that are not pinned, the
largest one (peak memory under memory pressure, latency under thermal or load pressure)
that has a lighter rung (ladder.py), overrides it in the box and swaps (load new, switch,
drain old) through the change path (runtime.service.changes) everyone shares. A pinned
application is only reported ("pinned: would step down to X"). Hard pressure with no
lighter rung anywhere sheds load (``Shedder``, when the daemon has one). A step up goes
back one rung along the governor's own record. A failed swap leaves the current variant
serving and backs off. ``dry_run`` logs and reports every decision and acts on none.

Everything the governor needs of the daemon comes through ``Host`` (wiring.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.config.governor import GovernorSettings
from runtime.governor.idle import IdleUnloader, Parking
from runtime.governor.ladder import Rung, rung_below
from runtime.governor.policy import LEVELS, Assessment, Decision, Kind, Policy, assess, thresholds
from runtime.governor.signals import Reading, ServiceLoad, SignalReader, load_readings

log = logging.getLogger(__name__)

EventListener = Callable[[dict[str, Any]], object]  # what it returns is ignored


@dataclass(frozen=True)
class Served:
    app: str
    variant: str
    version: str
    task: str = "tensor"


class Shedder(Protocol):
    """Load shedding (runtime/service/load_shed.py): HTTP 429 + Retry-After, MQTT reads paused."""

    def start(self, reason: str, retry_after_s: float, apps: Any = None) -> None: ...

    def stop(self) -> None: ...


class Host(Protocol):
    """What the governor needs of the daemon."""

    load: ServiceLoad
    shed: Shedder | None
    parking: Parking | None  # idle unload (the service's park), None where there is none

    def served(self) -> list[Served]: ...

    def pinned(self, app: str) -> str | None:
        """Who pins ``app`` (an operator, the settings), or None: the governor may act."""

    def rungs(self, app: str) -> list[Rung]:
        """The qualifying variants of the served package, pins left out. BLOCKING."""

    async def govern(self, app: str, variant: str | None, reason: str) -> None:
        """Override ``app`` to ``variant`` (None: lift it) and hot-swap through the change
        path; on failure the old variant keeps serving, the override is undone, it raises."""


@dataclass
class _Steps:
    """Where the governor stepped ``app`` from, newest last, and what it put there."""

    version: str
    placed: str
    came_from: list[str] = field(default_factory=list)


class Governor:
    def __init__(
        self,
        settings: GovernorSettings,
        host: Host,
        reader: SignalReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.host = host
        self.reader = reader or SignalReader(settings.host_root, gpu=settings.gpu)
        self.clock = clock
        self.table = thresholds(settings)
        self.policy = Policy(settings.sustain_s, settings.hold_s, settings.backoff_s)
        self.steps: dict[str, _Steps] = {}
        self.shedding = False
        self.counts: Counter[str] = Counter()  # decisions acted on (or logged in dry run)
        self.swaps: Counter[str] = Counter()  # "ok", "failed"
        self.samples = 0
        self.assessment = assess([], self.table)
        self.decision = Decision("none", next="first sample pending")
        self.last_action: dict[str, Any] | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=20)
        self._listeners: list[EventListener] = []
        self._said: set[tuple[str, ...]] = set()
        parking = host.parking
        self.idle = IdleUnloader(parking, settings.idle_unload_s) if parking is not None else None
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None  # the sampling task, once started

    def add_listener(self, fn: EventListener) -> None:
        """``fn(event)`` on the loop for every action (MQTT ``{prefix}/events``)."""
        self._listeners.append(fn)

    # ---- the loop ------------------------------------------------------------------
    def start(self) -> None:
        """Start sampling on the running loop (``close`` stops it)."""
        self.task = asyncio.get_running_loop().create_task(self.run(), name="governor")

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:  # a bug in one sample must not end the governor
                log.exception("sample failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.period_s)

    async def stop(self) -> None:
        """Stop sampling; a swap in progress finishes first."""
        self._stop.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        self.reader.close()

    async def sample(self) -> list[Reading]:
        readings = await asyncio.to_thread(self.reader.read_host)
        return readings + load_readings(self.host.load)

    async def tick(self) -> Decision:
        readings = await self.sample()
        self.samples += 1
        now = self.clock()
        self._forget_replaced()
        self.assessment = assess(readings, self.table)
        if not self.assessment.level:
            self._said.clear()  # the episode is over; the next one reports afresh
        self.decision = self.policy.decide(
            now, self.assessment, stepped_down=bool(self.steps), shedding=self.shedding
        )
        if self.decision.action == "step_down":
            await self._step_down(now, self.decision, self.assessment)
        elif self.decision.action == "step_up":
            await self._step_up(now, self.decision)
        elif self.decision.action == "stop_shed":
            self._shed(False, self.decision.reason)
        if self.idle is not None:
            text = [s.app for s in self.host.served() if s.task == "text"]
            for app in await self.idle.tick(now, text, self.settings.dry_run):
                idle = Decision("none", reason=f"idle {self.settings.idle_unload_s:g} s or more")
                self._record("idle_unload", idle, app=app)
        return self.decision

    def _first_time(self, *what: str) -> bool:
        """Whether ``what`` is new in this pressure episode: a report (pinned, no lighter
        rung) is logged and sent once per episode, not once per sample."""
        if what in self._said:
            return False
        self._said.add(what)
        return True

    def forget(self, app: str, why: str) -> None:
        """Drop the record of ``app`` (a fleet update, a reload): the new choice stands."""
        if self.steps.pop(app, None) is not None:
            log.info("%s: %s; starting from its new choice", app, why)

    def _forget_replaced(self) -> None:
        served = {s.app: s for s in self.host.served()}
        for app, st in list(self.steps.items()):
            now = served.get(app)
            if now is None or now.version != st.version or now.variant != st.placed:
                self.forget(app, "served variant changed by someone else")

    # ---- acting --------------------------------------------------------------------
    def _record(self, action: str, decision: Decision, **extra: Any) -> dict[str, Any]:
        event = {
            "event": "governor", "action": action, "kind": decision.kind,
            "level": decision.level, "reason": decision.reason, "at": time.time(),
            "dry_run": self.settings.dry_run, **extra,
        }  # fmt: skip
        self.counts[action] += 1
        self.last_action = event
        self.recent.append(event)
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                log.exception("event listener failed")
        return event

    async def _candidates(self, kind: Kind, first: str | None) -> list[tuple[Served, Rung, Rung]]:
        """Served applications with a lighter rung, largest first (``first`` leads: the
        application whose own queue or latency is over)."""
        found = []
        for s in self.host.served():
            rungs = await asyncio.to_thread(self.host.rungs, s.app)
            pair = rung_below(rungs, s.variant, kind)
            if pair is not None:
                found.append((s, *pair))
        found.sort(key=lambda t: (t[0].app != first, -t[1].key(kind)))
        return found

    async def _step_down(self, now: float, d: Decision, a: Assessment) -> None:
        kind = d.kind or "memory"
        candidates = await self._candidates(kind, a.app if kind == "load" else None)
        for served, here, lower in candidates:
            move = (f"{served.app} {here.variant} -> {lower.variant} "
                    f"({here.describe(kind)} -> {lower.describe(kind)})")  # fmt: skip
            pin = self.host.pinned(served.app)
            if pin is not None:
                if self._first_time("pinned", served.app, lower.variant):
                    log.info("%s pressure (%s): %s, would step down %s",
                             d.level, d.reason, pin, move)  # fmt: skip
                    self._record("pinned", d, app=served.app, variant=here.variant,
                                 to=lower.variant, pin=pin)  # fmt: skip
                continue
            reason = f"{kind} {d.level}: {d.reason}"
            await self._swap(now, d, "step_down", served, lower.variant, reason, move)
            return
        if d.level == "hard":
            self._shed(True, d.reason)
        elif self._first_time("no_rung", d.level):
            log.info("%s pressure (%s): no lighter variant it may step down to",
                     d.level, d.reason)  # fmt: skip
            self._record("no_rung", d)

    async def _step_up(self, now: float, d: Decision) -> None:
        served = {s.app: s for s in self.host.served()}
        # The most recent step is undone first.
        app = max(self.steps, key=lambda a: len(self.steps[a].came_from))
        st, s = self.steps[app], served[app]
        back = st.came_from[-1]
        override = back if len(st.came_from) > 1 else None  # the first rung is the box's choice
        move = f"{app} {s.variant} -> {back}"
        await self._swap(now, d, "step_up", s, override, d.reason, move, back)

    async def _swap(
        self, now: float, d: Decision, action: str, s: Served, override: str | None,
        reason: str, move: str, expect: str | None = None,
    ) -> None:  # fmt: skip
        target = expect or override
        if self.settings.dry_run:
            log.info("dry run: would %s %s (%s)", action.replace("_", " "), move,
                     d.reason)  # fmt: skip
            self._record(action, d, app=s.app, variant=s.variant, to=target)
            self.policy.started(now)
            self.policy.finished(self.clock(), True)
            return
        log.info("%s %s (%s)", action.replace("_", " "), move, d.reason)
        self.policy.started(now)
        t0 = time.perf_counter()
        try:
            await self.host.govern(s.app, override, reason)
        except Exception as e:
            self.policy.finished(self.clock(), False)
            self.swaps["failed"] += 1
            log.error("%s of %s failed, %s keeps serving; backing off %g s: %s",
                      action.replace("_", " "), s.app, s.variant, self.settings.backoff_s,
                      e)  # fmt: skip
            self._record(f"{action}_failed", d, app=s.app, variant=s.variant, to=target,
                         error=str(e))  # fmt: skip
            return
        self.policy.finished(self.clock(), True)
        self.swaps["ok"] += 1
        now_serving = next((x for x in self.host.served() if x.app == s.app), None)
        placed = now_serving.variant if now_serving else (target or "")
        version = now_serving.version if now_serving else s.version
        if action == "step_down":
            st = self.steps.get(s.app) or _Steps(version, placed)
            st.came_from.append(s.variant)
            st.placed, st.version = placed, version
            self.steps[s.app] = st
        else:
            st = self.steps[s.app]
            st.came_from.pop()
            st.placed, st.version = placed, version
            if not st.came_from:
                del self.steps[s.app]
        self._record(action, d, app=s.app, variant=s.variant, to=placed,
                     swap_s=round(time.perf_counter() - t0, 3))  # fmt: skip

    def _shed(self, on: bool, reason: str) -> None:
        if on == self.shedding:
            return
        d = self.decision
        if self.host.shed is None:
            if on and self._first_time("no_shed", d.level):
                log.warning("hard pressure (%s) and no lighter variant it may use; "
                            "no load shedding in this daemon", reason)  # fmt: skip
                self._record("no_rung", d)
            return
        if on:
            log.warning("hard pressure (%s) and no lighter variant it may use: "
                        "shedding load (Retry-After %d s)", reason,
                        self.settings.retry_after_s)  # fmt: skip
            if not self.settings.dry_run:
                self.host.shed.start(reason, self.settings.retry_after_s)
        else:
            log.info("%s: no longer shedding load", reason)
            if not self.settings.dry_run:
                self.host.shed.stop()
        self.shedding = on
        self._record("shed" if on else "stop_shed", d)

    # ---- what it shows -------------------------------------------------------------
    def state(self) -> str:
        if self.shedding:
            return "shedding"
        if self.policy.busy:
            return "swapping"
        if self.assessment.level:
            return f"{LEVELS[self.assessment.level]} {self.assessment.kind} pressure"
        return "stepped down, recovering" if self.steps else "normal"

    def status(self) -> dict[str, Any]:
        """The ``governor`` section of /status (and ``headframe governor status``)."""
        return {
            "enabled": True, "dry_run": self.settings.dry_run,
            "period_s": self.settings.period_s, "host_root": str(self.settings.host_root),
            "state": self.state(), "level": LEVELS[self.assessment.level],
            "kind": self.assessment.kind, "pressure": self.assessment.text(),
            "signals": [j.to_dict() for j in self.assessment.judged],
            "thresholds": {k: t.to_dict() for k, t in self.table.items()},
            "sustain_s": self.settings.sustain_s, "hold_s": self.settings.hold_s,
            "backoff_s": self.settings.backoff_s,
            "last_action": self.last_action, "next_action": self.decision.next,
            "stepped": {a: {"serving": s.placed, "came_from": list(s.came_from)}
                        for a, s in self.steps.items()},
            "shedding": self.shedding,
            "counts": dict(self.counts), "samples": self.samples,
            "swaps": {"ok": self.swaps["ok"], "failed": self.swaps["failed"]},
            "recent": list(self.recent),
        }  # fmt: skip

    def metric_families(self) -> list[Metric]:
        decisions = CounterMetricFamily(
            "headframe_governor_decisions", "Governor decisions acted on (or logged in dry run).",
            labels=["action"],
        )  # fmt: skip
        for action, n in sorted(self.counts.items()):
            decisions.add_metric([action], n)
        swaps = CounterMetricFamily(
            "headframe_governor_swaps", "Governor swaps by result.", labels=["result"]
        )
        for result in ("ok", "failed"):
            swaps.add_metric([result], self.swaps[result])
        level = GaugeMetricFamily(
            "headframe_governor_pressure_level", "Worst pressure now: 0 none, 1 soft, 2 hard."
        )
        level.add_metric([], self.assessment.level)
        stepped = GaugeMetricFamily(
            "headframe_governor_steps_down", "Rungs below its own choice, per application.",
            labels=["app"],
        )  # fmt: skip
        for app, st in sorted(self.steps.items()):
            stepped.add_metric([app], len(st.came_from))
        shedding = GaugeMetricFamily("headframe_governor_shedding", "1 while shedding load.")
        shedding.add_metric([], int(self.shedding))
        signals = GaugeMetricFamily(
            "headframe_governor_signal", "The governor's signals as last read.",
            labels=["signal", "source"],
        )  # fmt: skip
        for j in self.assessment.judged:
            signals.add_metric([j.reading.signal, j.reading.source], j.reading.value)
        return [decisions, swaps, level, stepped, shedding, signals]
