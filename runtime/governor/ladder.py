"""Which variant is one rung down for an application, from the box's own selection.

The rungs are the variants that qualify on this box (``Selection.ranked``, made without
pins: budget, floor, measured quality and latency budget already applied by
runtime/selection.py and runtime/ranking.py). Under memory pressure they are ordered by
peak memory, under thermal or load pressure by latency (measured here when measured,
else the package's figure): one rung down is the nearest variant strictly below the one
serving. Going back up is the governor's own record of where it stepped from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.governor.policy import Kind


@dataclass(frozen=True)
class Rung:
    variant: str
    peak_memory_bytes: int
    latency_us: int | None

    def key(self, kind: Kind) -> float:
        if kind == "memory":
            return float(self.peak_memory_bytes)
        return float(self.latency_us) if self.latency_us is not None else float("inf")

    def describe(self, kind: Kind) -> str:
        if kind == "memory":
            return f"peak {self.peak_memory_bytes / 1e6:.1f} MB"
        return f"latency {self.latency_us} us" if self.latency_us is not None else "latency ?"


def rungs_of(selection: Any) -> list[Rung]:
    """The qualifying variants of a ``runtime.selection.Selection``."""
    out: list[Rung] = []
    for choice in selection.ranked:
        m = choice.measured
        latency = m.p50_us if m is not None and m.p50_us is not None else choice.variant.latency_us
        out.append(Rung(choice.variant.variant, choice.variant.peak_memory_bytes, latency))
    return out


def rung_below(rungs: list[Rung], current: str, kind: Kind) -> tuple[Rung, Rung] | None:
    """(the serving rung, the one below it) or None when nothing is lighter for ``kind``."""
    here = next((r for r in rungs if r.variant == current), None)
    if here is None:
        return None
    lighter = [r for r in rungs if r.key(kind) < here.key(kind)]
    if not lighter:
        return None
    return here, max(lighter, key=lambda r: (r.key(kind), r.variant))
