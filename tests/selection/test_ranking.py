"""Ranking from what calibration measured (runtime/selection/ranking.py), as tables: which
targets of a variant stay and why the others went, the order of the qualifying variants
under each objective and the sentence `models select` prints for it, and what the fleet
shortlists for download."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.catalog import VariantMeta
from runtime.profiles import Target
from runtime.selection.measurement import Measurement
from runtime.selection.ranking import Item, measured_targets, order, shortlist
from tests.support.synthetic import MB, make_variant

ONNX = Target(backend="onnx", device="cpu")
OPENVINO = Target(backend="openvino", device="cpu")


def _m(backend: str, *, variant: str = "v", **kw: Any) -> Measurement:
    kw.setdefault("ok", True)
    return Measurement(variant=variant, backend=backend, device="cpu", **kw)


@pytest.mark.parametrize(
    ("measured", "floor_bp", "budget_us", "kept", "first_p50", "dropped"),
    [
        pytest.param([], 9000, None, ["onnx", "openvino"], None, [], id="nothing measured"),
        pytest.param(
            [_m("onnx", p50_us=90), _m("openvino", p50_us=40)], 9000, None,
            ["openvino", "onnx"], 40, [], id="fastest target first",
        ),
        pytest.param(
            [_m("openvino", p50_us=40)], 9000, None,
            ["openvino", "onnx"], 40, [], id="measured before unmeasured",
        ),
        pytest.param(
            [_m("onnx", ok=False, error="hung past 2.0 s"), _m("openvino", p50_us=40)],
            9000, None, ["openvino"], 40,
            ["onnx/cpu: calibration failed: hung past 2.0 s"], id="failed target goes",
        ),
        pytest.param(
            [_m("onnx", p50_us=30, quality_bp=8500)], 9000, None, ["openvino"], None,
            ["onnx/cpu: top1 85.00% here (95.00% at build) is below the floor 90.00%"],
            id="under the floor here",
        ),
        pytest.param(
            [_m("onnx", p50_us=500), _m("openvino", p50_us=80)], 9000, 100,
            ["openvino"], 80, ["onnx/cpu: p50 500 us here is over the budget 100 us"],
            id="over the latency budget",
        ),
        pytest.param(
            [_m("onnx", p50_us=30, quality_bp=None)], 9000, None,
            ["onnx", "openvino"], 30, [], id="quality not scored is no reason to drop",
        ),
        pytest.param(
            [_m("onnx", ok=False, error="crashed"), _m("openvino", ok=False, error="crashed")],
            9000, None, [], None,
            ["onnx/cpu: calibration failed: crashed", "openvino/cpu: calibration failed: crashed"],
            id="every target failed",
        ),
    ],
)  # fmt: skip
def test_measured_targets(
    measured: list[Measurement],
    floor_bp: int,
    budget_us: int | None,
    kept: list[str],
    first_p50: int | None,
    dropped: list[str],
) -> None:
    v = make_variant("v", 10 * MB, accuracy_bp=9500)
    targets, first, why = measured_targets(
        v, [ONNX, OPENVINO], {m.key: m for m in measured}, floor_bp, budget_us
    )
    assert [t.backend for t in targets] == kept
    assert (first.p50_us if first else None) == first_p50
    assert why == dropped


# Three variants: "mid" is the fastest, "small" the smallest, "big" was never measured.
SIZES = {"small": 5 * MB, "mid": 10 * MB, "big": 20 * MB}
P50 = {"small": 900, "mid": 300}


def _items(p50: dict[str, int]) -> list[Item]:
    out: list[Item] = []
    for name, size in SIZES.items():
        v = make_variant(name, size)
        m = _m("onnx", variant=name, p50_us=p50[name]) if name in p50 else None
        out.append((v, [ONNX], m))
    return out


def _static(v: VariantMeta) -> tuple[int, str]:
    return (v.bytes, v.variant)


@pytest.mark.parametrize(
    ("objective", "factor", "p50", "ranked", "sentence"),
    [
        pytest.param("smallest", 2.0, P50, ["small", "mid", "big"],
                     "objective smallest: smallest of 2 measured", id="smallest"),
        pytest.param("fastest", 2.0, P50, ["mid", "small", "big"],
                     "objective fastest: fastest of 2 measured", id="fastest"),
        pytest.param(
            "balanced", 2.0, P50, ["mid", "small", "big"],
            "objective balanced: smallest of 1 within 2x of the fastest measured "
            "(p50 300 us, limit 600 us)", id="balanced: the small one is too slow",
        ),
        pytest.param(
            "balanced", 4.0, P50, ["small", "mid", "big"],
            "objective balanced: smallest of 2 within 4x of the fastest measured "
            "(p50 300 us, limit 1200 us)", id="balanced: the small one is close enough",
        ),
        pytest.param("fastest", 2.0, {}, ["small", "mid", "big"], "",
                     id="nothing measured: the static rule"),
        pytest.param("fastest", 2.0, {"small": 300, "mid": 300}, ["small", "mid", "big"],
                     "objective fastest: fastest of 2 measured",
                     id="a tie goes to the static rule"),
    ],
)  # fmt: skip
def test_order(
    objective: str, factor: float, p50: dict[str, int], ranked: list[str], sentence: str
) -> None:
    items, why = order(_items(p50), objective, factor, _static)
    assert [v.variant for v, _, _ in items] == ranked
    assert why == sentence


@pytest.mark.parametrize(
    ("sizes_mb", "count", "bytes_factor", "expected"),
    [
        pytest.param([], 2, 1.5, [], id="nothing to shortlist"),
        pytest.param([10, 12, 30, 50], 1, 1.5, [10, 12], id="the best and those near its size"),
        pytest.param([10, 12, 30, 50], 1, 1.0, [10], id="only the best"),
        pytest.param([10, 12, 30, 50], 3, 1.0, [10, 12, 30], id="the count best"),
        pytest.param([30, 10, 50], 1, 3.0, [30, 10], id="in ranked order, not by size"),
    ],
)  # fmt: skip
def test_shortlist(
    sizes_mb: list[int], count: int, bytes_factor: float, expected: list[int]
) -> None:
    ranked = [make_variant(f"v{i}", mb * MB) for i, mb in enumerate(sizes_mb)]
    assert [v.bytes // MB for v in shortlist(ranked, count, bytes_factor)] == expected
