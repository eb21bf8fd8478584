"""Selection from measurements (pure): objective, floor on quality measured here, the
latency budget as a hard limit, failed and unmeasured candidates."""

from __future__ import annotations

from typing import Any

from runtime.selection import Policy, Resources, select
from runtime.selection.measurement import Measurement
from tests.support.synthetic import local_report, make_package_meta, make_profile, make_variant

GB = 1 << 30
PROFILE = make_profile(targets=[{"backend": "onnx", "device": "cpu"}])
VARIANTS = [
    make_variant("tiny-int8", 1000, precision="int8", accuracy_bp=9667),
    make_variant("small-fp32", 2000, accuracy_bp=9694),
    make_variant("big-fp32", 8000, accuracy_bp=9700),
]


def _m(variant: str, p50: int | None, quality: int | None = 9650, ok: bool = True) -> Measurement:
    return Measurement(
        variant, "onnx", "cpu", ok, None if ok else "crashed", quality, "top1", p50, p50
    )


def _pick(measured: list[Measurement], floor: int = 9000, **policy: Any) -> Any:
    package = make_package_meta(floor_bp=floor)
    for k in ("latency_budget_us",):
        if k in policy:
            package = package.model_copy(update={k: policy.pop(k)})
    return select(
        package,
        VARIANTS,
        PROFILE,
        local_report(),
        Resources(8 * GB),
        Policy(**policy),
        measurements={m.key: m for m in measured},
    )


MEASURED = [_m("tiny-int8", 21), _m("small-fp32", 15), _m("big-fp32", 40)]


def test_objectives_rank_the_measured() -> None:
    assert _pick(MEASURED, objective="smallest").chosen.variant.variant == "tiny-int8"
    assert _pick(MEASURED, objective="fastest").chosen.variant.variant == "small-fp32"
    # balanced at 1.25: 21 us is over 15 * 1.25, so the smallest within the factor wins
    assert _pick(MEASURED, objective="balanced").chosen.variant.variant == "small-fp32"
    loose = _pick(MEASURED, objective="balanced", factor=1.5)
    assert loose.chosen.variant.variant == "tiny-int8"
    assert "p50 21 us" in loose.reason and "within 1.5x" in loose.reason


def test_quality_measured_here_replaces_the_build_figure_for_the_floor() -> None:
    measured = [_m("tiny-int8", 10, quality=9639), _m("small-fp32", 15, quality=9694)]
    sel = _pick(measured, floor=9650, objective="smallest")
    assert sel.chosen.variant.variant == "small-fp32"
    why = {r.variant.variant: r.reason for r in sel.rejected}["tiny-int8"]
    assert "96.39% here (96.67% at build)" in why and "96.50%" in why


def test_the_latency_budget_is_a_hard_limit() -> None:
    sel = _pick(MEASURED, objective="smallest", latency_budget_us=20)
    assert sel.chosen.variant.variant == "small-fp32"
    assert (
        "p50 21 us here is over the budget 20 us"
        in {r.variant.variant: r.reason for r in sel.rejected}["tiny-int8"]
    )


def test_unmeasured_rank_after_measured_and_failures_are_rejected() -> None:
    sel = _pick([_m("big-fp32", 40), _m("tiny-int8", None, ok=False)], objective="smallest")
    assert [c.variant.variant for c in sel.ranked] == ["big-fp32", "small-fp32"]
    assert "not measured (budget)" in sel.ranked[1].reason
    assert "calibration failed: crashed" in sel.rejected[0].reason
    data = sel.to_dict()
    assert data["ranked"][0]["measured"]["p50_us"] == 40 and data["ranked"][1]["measured"] is None


def test_without_measurements_the_static_rule_is_unchanged() -> None:
    sel = _pick([], objective="fastest")
    assert sel.chosen.variant.variant == "tiny-int8" and sel.reason.startswith("smallest")
