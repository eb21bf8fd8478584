"""The governor's decisions. PURE: no file, no clock, no service; time is passed in.

``thresholds(settings)`` turns ``[governor]`` into one ``Threshold`` per signal;
``assess(readings, thresholds)`` judges a sample (the worst reading decides the level and
the kind of pressure: memory, thermal or load); ``Policy.decide(now, assessment, ...)``
says what to do now:

- hard pressure: step down at once (the controller sheds load when there is no smaller
  rung);
- soft pressure: step down once it has lasted ``sustain_s`` (a flapping signal restarts
  the count every time it drops back under the threshold);
- pressure gone: step back up one rung only after every signal has been beyond its
  recovery margin for ``hold_s`` and the last step is ``hold_s`` old (hysteresis); the
  margin is ``recovery_margin`` of the soft-hard gap, and for a signal that rises under
  pressure at most that fraction of its soft threshold (so the recovered edge stays
  above 0);
- never while a swap is in flight, and not for ``backoff_s`` after a failed one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from runtime.config.governor import GovernorSettings
from runtime.governor.signals import Reading

Kind = Literal["memory", "thermal", "load"]
Action = Literal["none", "step_down", "step_up", "stop_shed"]
LEVELS = ("ok", "soft", "hard")

# signal -> (kind, soft key, hard key, pressure when the value falls, unit)
SIGNALS: dict[str, tuple[Kind, str, str, bool, str]] = {
    "memory_available_pct": ("memory", "memory_soft_pct", "memory_hard_pct", True, "%"),
    "cgroup_headroom_pct": ("memory", "cgroup_soft_pct", "cgroup_hard_pct", True, "%"),
    "psi_some_avg10": ("memory", "psi_soft_pct", "psi_hard_pct", False, "%"),
    "gpu_memory_free_pct": ("memory", "gpu_memory_soft_pct", "gpu_memory_hard_pct", True, "%"),
    "thermal_margin_c": ("thermal", "thermal_soft_margin_c", "thermal_hard_margin_c", True, " C"),
    "thermal_c": ("thermal", "thermal_soft_c", "thermal_hard_c", False, " C"),
    "gpu_c": ("thermal", "gpu_soft_c", "gpu_hard_c", False, " C"),
    "queue": ("load", "queue_soft", "queue_hard", False, ""),
    "p95_ms": ("load", "p95_soft_ms", "p95_hard_ms", False, " ms"),
}
_OFF_WHEN_ZERO = {"queue", "p95_ms"}


@dataclass(frozen=True)
class Threshold:
    """How one signal is judged. ``None`` for a side that is off."""

    signal: str
    kind: Kind
    soft: float | None
    hard: float | None
    below: bool  # pressure when the value falls (memory available, margin to a trip)
    unit: str
    margin: float  # how far beyond ``soft`` the value must be to count as recovered

    def _past(self, value: float, limit: float | None) -> bool:
        if limit is None:
            return False
        return value < limit if self.below else value > limit

    def level(self, value: float) -> int:
        return 2 if self._past(value, self.hard) else 1 if self._past(value, self.soft) else 0

    def clear(self, value: float) -> bool:
        """Recovered: beyond the soft threshold by the recovery margin."""
        edge = self.soft if self.soft is not None else self.hard
        if edge is None:
            return True
        return value >= edge + self.margin if self.below else value <= edge - self.margin

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "soft": self.soft, "hard": self.hard, "unit": self.unit.strip(),
                "pressure_when": "below" if self.below else "above",
                "recovered_beyond": self.margin}  # fmt: skip


def thresholds(settings: GovernorSettings) -> dict[str, Threshold]:
    out: dict[str, Threshold] = {}
    for signal, (kind, soft_key, hard_key, below, unit) in SIGNALS.items():
        soft: float | None = float(getattr(settings, soft_key))
        hard: float | None = float(getattr(settings, hard_key))
        if signal in _OFF_WHEN_ZERO:
            soft = soft or None
            hard = hard or None
        if soft is not None and hard is not None:
            gap = abs(soft - hard)
        else:
            gap = abs(soft or hard or 0.0) * 0.2  # one side only: a fifth of its value
        margin = settings.recovery_margin * gap
        edge = soft if soft is not None else hard
        if not below and edge is not None:
            # A signal that rises under pressure recovers below edge - margin, and it
            # cannot fall below 0: the margin is relative to the edge too. PSI soft 20%
            # and hard 60% recovered only at exactly 0.0 (20 - 0.5 x 40); now below 10%.
            margin = min(margin, settings.recovery_margin * edge)
        out[signal] = Threshold(signal, kind, soft, hard, below, unit, margin)
    return out


@dataclass(frozen=True)
class Judged:
    reading: Reading
    threshold: Threshold
    level: int
    clear: bool

    def text(self) -> str:
        t, r = self.threshold, self.reading
        unit = t.unit
        if self.level:
            limit = t.hard if self.level == 2 else t.soft
            sign = "<" if t.below else ">"
            what = f"{sign} {LEVELS[self.level]} {limit:g}{unit}"
        else:
            what = "ok"
        where = f" ({r.source})" if r.source else ""
        return f"{r.signal} {r.value:.1f}{unit}{where} {what}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.reading.to_dict(), "level": LEVELS[self.level], "recovered": self.clear,
                "soft": self.threshold.soft, "hard": self.threshold.hard,
                "unit": self.threshold.unit.strip()}  # fmt: skip


@dataclass(frozen=True)
class Assessment:
    """A judged sample: the worst level, its kind, and every reading judged."""

    level: int
    worst: Judged | None
    judged: tuple[Judged, ...]
    clear: bool  # every signal beyond its recovery margin

    @property
    def kind(self) -> Kind | None:
        return self.worst.threshold.kind if self.worst and self.level else None

    @property
    def app(self) -> str | None:
        """For load pressure: the application whose queue or latency is over."""
        return self.worst.reading.app if self.worst and self.level else None

    def text(self) -> str:
        over = [j.text() for j in self.judged if j.level == self.level and self.level]
        return "; ".join(over) if over else "no pressure"


def assess(readings: Iterable[Reading], table: dict[str, Threshold]) -> Assessment:
    judged: list[Judged] = []
    for r in readings:
        t = table.get(r.signal)
        if t is None or not math.isfinite(r.value):
            continue
        judged.append(Judged(r, t, t.level(r.value), t.clear(r.value)))
    worst = max(judged, key=lambda j: j.level, default=None)
    level = worst.level if worst else 0
    return Assessment(level, worst, tuple(judged), all(j.clear for j in judged))


@dataclass(frozen=True)
class Decision:
    """What to do now. ``reason`` carries the numbers; ``next`` says what could come next."""

    action: Action
    kind: Kind | None = None
    level: str = "ok"
    reason: str = ""
    next: str = ""


class Policy:
    """The governor's memory between samples (when pressure began, the last step, a swap
    in flight, the back-off). Call ``decide`` once per sample, ``started`` when a swap
    begins and ``finished`` when it ends."""

    def __init__(self, sustain_s: float, hold_s: float, backoff_s: float) -> None:
        self.sustain_s = sustain_s
        self.hold_s = hold_s
        self.backoff_s = backoff_s
        self.pressure_since: float | None = None  # soft-or-worse, unbroken, since
        self.last_unclear = -math.inf  # the last sample not fully recovered
        self.last_step = -math.inf
        self.busy = False
        self.backoff_until = -math.inf

    def decide(self, now: float, a: Assessment, *, stepped_down: bool, shedding: bool) -> Decision:
        if a.level:
            self.last_unclear = now
            if self.pressure_since is None:
                self.pressure_since = now
        else:
            self.pressure_since = None
            if not a.clear:
                self.last_unclear = now
        level = LEVELS[a.level]
        if self.busy:
            return Decision("none", a.kind, level, a.text(), "waiting for the swap in progress")
        if now < self.backoff_until:
            wait = self.backoff_until - now
            return Decision("none", a.kind, level, a.text(),
                            f"backing off after a failed swap: {wait:.1f} s left")  # fmt: skip
        if a.level == 2:
            return Decision("step_down", a.kind, level, a.text())
        if a.level == 1:
            assert self.pressure_since is not None
            lasted = now - self.pressure_since
            if lasted >= self.sustain_s:
                return Decision("step_down", a.kind, level, f"{a.text()} for {lasted:.1f} s")
            left = self.sustain_s - lasted
            return Decision(
                "none", a.kind, level, a.text(), f"step down in {left:.1f} s if it lasts"
            )
        if not a.clear:
            return Decision("none", None, level, "no pressure",
                            "recovering: not yet beyond the recovery margin")  # fmt: skip
        if shedding:
            return Decision("stop_shed", None, level, "pressure gone")
        if stepped_down:
            wait = max(self.last_unclear, self.last_step) + self.hold_s - now
            if wait <= 0:
                return Decision("step_up", None, level, f"recovered for {self.hold_s:g} s")
            return Decision("none", None, level, "no pressure",
                            f"step up in {wait:.1f} s if recovery holds")  # fmt: skip
        return Decision("none", None, level, "no pressure", "")

    def started(self, now: float) -> None:
        self.busy = True
        self.last_step = now

    def finished(self, now: float, ok: bool) -> None:
        self.busy = False
        # Another soft step needs the pressure to last sustain_s again, measured from now.
        if self.pressure_since is not None:
            self.pressure_since = now
        if not ok:
            self.backoff_until = now + self.backoff_s
