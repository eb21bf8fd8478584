"""Choosing from measurements: the measured half of runtime.selection. PURE.

Two steps, both fed by what calibration measured on this box (runtime.selection.measurement):
``measured_targets`` drops the (backend, device) targets of one variant that failed or
hung, scored below the floor here, or ran over the package's latency budget, and puts
the fastest measured target first; ``order`` ranks the qualifying variants under the
objective. Variants without a measurement ("not measured (budget)") rank after every
measured one, by the static rule (smallest first).

Objectives: ``smallest`` (the static rule among the measured), ``fastest`` (lowest p50),
``balanced`` (the smallest whose p50 is within ``factor`` of the fastest's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runtime.catalog import VariantMeta
from runtime.profiles import Target
from runtime.selection.measurement import Measurement, MeasurementKey
from runtime.units import percent_bp

OBJECTIVES = ("smallest", "fastest", "balanced")


def quality_text(v: VariantMeta, m: Measurement) -> str:
    """ "96.39% here (96.67% at build)": both figures, so a drop is plain."""
    if m.quality_bp is None:
        return "quality not scored here"
    build = f" ({percent_bp(v.accuracy_bp)} at build)" if v.accuracy_bp is not None else ""
    return f"{percent_bp(m.quality_bp)} here{build}"


def measured_text(v: VariantMeta, m: Measurement) -> str:
    """ "pruned75-int8 on onnx/cpu: p50 21 us, 96.39% here (96.67% at build)"."""
    p50 = f"p50 {m.p50_us} us" if m.p50_us is not None else "no timing"
    batch = f" at batch {m.batch}" if m.batch != 1 else ""
    return f"{v.variant} on {m.backend}/{m.device}: {p50}{batch}, {quality_text(v, m)}"


def measured_targets(
    v: VariantMeta,
    targets: Sequence[Target],
    measurements: Mapping[MeasurementKey, Measurement],
    floor_bp: int,
    budget_us: int | None,
) -> tuple[list[Target], Measurement | None, list[str]]:
    """The targets left for ``v`` (fastest measured first, then the unmeasured in profile
    order), the measurement of the first one (None: unmeasured), and why others went."""
    ok: list[tuple[Measurement, Target]] = []
    unmeasured: list[Target] = []
    dropped: list[str] = []
    for t in targets:
        m = measurements.get((v.variant, t.backend, t.device))
        where = f"{t.backend}/{t.device}"
        if m is None:
            unmeasured.append(t)
        elif not m.ok:
            dropped.append(f"{where}: calibration failed: {m.error}")
        elif m.quality_bp is not None and m.quality_bp < floor_bp:
            dropped.append(
                f"{where}: {m.metric} {quality_text(v, m)} is below the floor "
                f"{percent_bp(floor_bp)}"
            )
        elif budget_us is not None and m.p50_us is not None and m.p50_us > budget_us:
            dropped.append(f"{where}: p50 {m.p50_us} us here is over the budget {budget_us} us")
        else:
            ok.append((m, t))
    ok.sort(key=lambda mt: mt[0].p50_us if mt[0].p50_us is not None else 2**62)
    kept = [t for _, t in ok] + unmeasured
    return kept, (ok[0][0] if ok else None), dropped


Item = tuple[VariantMeta, list[Target], Measurement | None]


def order(
    items: Sequence[Item],
    objective: str,
    factor: float,
    static_key: Callable[[VariantMeta], Any],
) -> tuple[list[Item], str]:
    """``items`` ranked under ``objective``, and the sentence that explains the first."""
    measured = [i for i in items if i[2] is not None and i[2].p50_us is not None]
    rest = sorted((i for i in items if i not in measured), key=lambda i: static_key(i[0]))
    if not measured:
        return rest, ""

    def p50(i: Item) -> int:
        assert i[2] is not None and i[2].p50_us is not None
        return i[2].p50_us

    fastest = min(measured, key=p50)
    if objective == "fastest":
        measured.sort(key=lambda i: (p50(i), static_key(i[0])))
        why = f"fastest of {len(measured)} measured"
    elif objective == "balanced":
        limit = p50(fastest) * factor
        within = sorted((i for i in measured if p50(i) <= limit), key=lambda i: static_key(i[0]))
        beyond = sorted((i for i in measured if p50(i) > limit), key=p50)
        measured = within + beyond
        why = (
            f"smallest of {len(within)} within {factor:g}x of the fastest measured "
            f"(p50 {p50(fastest)} us, limit {limit:.0f} us)"
        )
    else:
        measured.sort(key=lambda i: static_key(i[0]))
        why = f"smallest of {len(measured)} measured"
    return measured + rest, f"objective {objective}: {why}"


def shortlist(ranked: Sequence[VariantMeta], count: int, bytes_factor: float) -> list[VariantMeta]:
    """What the fleet downloads to measure: the ``count`` best of ``ranked`` (the static
    rule's order), and every one within ``bytes_factor`` of the smallest's bytes."""
    if not ranked:
        return []
    limit = min(v.bytes for v in ranked) * bytes_factor
    return [v for i, v in enumerate(ranked) if i < count or v.bytes <= limit]
