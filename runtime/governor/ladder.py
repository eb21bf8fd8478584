"""Which variant is one rung down for an application, from the box's own selection.

The rungs are the variants that qualify on this box (``Selection.ranked``, made without
pins: budget, floor, measured quality and latency budget already applied by
runtime/selection/decide.py and runtime/selection/ranking.py). Under memory pressure they
are ordered by peak memory (then bytes), under thermal or load pressure by latency
(measured here when measured, else the package's figure): one rung down is the nearest
variant strictly below the one serving. Going back up is the governor's own record of where
it stepped from.

``memory_order`` (peak memory, then bytes) is the one memory order: the governor steps
along it, and the fleet (runtime/fleet/wiring.py) keeps the rungs below its winner by it
(``lighter``), so what a fleet-managed box keeps on disk is what the governor steps to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from runtime.governor.policy import Kind
from runtime.units import human_bytes


class Sized(Protocol):
    """A variant's sizes (VariantMeta and Rung both have them)."""

    @property
    def peak_memory_bytes(self) -> int: ...

    @property
    def bytes(self) -> int: ...


S = TypeVar("S", bound=Sized)


def memory_order(v: Sized) -> tuple[int, int]:
    """The memory order: peak memory, then bytes on disk."""
    return (v.peak_memory_bytes, v.bytes)


def lighter(variants: Sequence[S], than: Sequence[Sized], count: int) -> list[S]:
    """Up to ``count`` of ``variants`` strictly lighter in memory order than every one of
    ``than``, the nearest first (the rungs the governor would step to first)."""
    if count <= 0 or not than:
        return []
    bound = min(memory_order(v) for v in than)
    below = [v for v in variants if memory_order(v) < bound]
    return sorted(below, key=memory_order, reverse=True)[:count]


@dataclass(frozen=True)
class Rung:
    variant: str
    peak_memory_bytes: int
    latency_us: int | None
    bytes: int = 0

    def key(self, kind: Kind) -> float:
        if kind == "memory":
            return float(self.peak_memory_bytes)
        return float(self.latency_us) if self.latency_us is not None else float("inf")

    def describe(self, kind: Kind) -> str:
        if kind == "memory":
            return f"peak {human_bytes(self.peak_memory_bytes)}"
        return f"latency {self.latency_us} us" if self.latency_us is not None else "latency ?"


def rungs_of(selection: Any) -> list[Rung]:
    """The qualifying variants of a ``runtime.selection.Selection``."""
    out: list[Rung] = []
    for choice in selection.ranked:
        m = choice.measured
        latency = m.p50_us if m is not None and m.p50_us is not None else choice.variant.latency_us
        v = choice.variant
        out.append(Rung(v.variant, v.peak_memory_bytes, latency, v.bytes))
    return out


def rung_below(rungs: list[Rung], current: str, kind: Kind) -> tuple[Rung, Rung] | None:
    """(the serving rung, the one below it) or None when nothing is lighter for ``kind``."""
    here = next((r for r in rungs if r.variant == current), None)
    if here is None:
        return None
    if kind == "memory":
        below = lighter(rungs, [here], 1)
        return (here, below[0]) if below else None
    faster = [r for r in rungs if r.key(kind) < here.key(kind)]
    if not faster:
        return None
    return here, max(faster, key=lambda r: (r.key(kind), r.variant))
