"""Measured choice on the demo store: is the chosen variant as fast as the objective
promises, does calibration fit its budget, and what does the cache save at start-up?

    .venv/bin/python bench/calibration_bench.py [--store DIR] [--runs N] [--rounds R] [--json]

For each objective (fastest, balanced), in a fresh state directory:
- calibration wall time for the demo application (first start: every candidate measured)
  against its budget, and the cached start (a new calibrator reading the cache) against it;
- the chosen candidate's p50 against the fastest qualifying candidate's, both timed again
  here in the same run, rounds interleaved (targets: within 1.10x under ``fastest``,
  within ``balanced_factor`` under ``balanced``).
Every figure is printed with the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime import golden_run  # noqa: E402
from runtime.box import build_box  # noqa: E402
from runtime.catalog import ModelPackage, Store  # noqa: E402
from runtime.config import Settings  # noqa: E402
from runtime.demo import APP, build_demo_catalog  # noqa: E402
from runtime.loading.calibrator import measuring_loader  # noqa: E402
from runtime.profiles import Target  # noqa: E402


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _p50_now(loader: Any, package: ModelPackage, variant: str, target: Target, runs: int) -> float:
    backend = loader.targets.load_target(package.variant(variant), target, package.meta.task)
    try:
        data = golden_run.read_golden(package)
        assert data is not None
        scored = golden_run.score(package, backend, data)
        assert scored.request is not None
        return statistics.median(golden_run.time_requests(scored.request, runs))
    finally:
        backend.unload()


def bench_objective(store: Path, objective: str, runs: int, rounds: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix=f"hf-cal-{objective}-"))
    settings = Settings(
        paths={"state_dir": state, "store_dir": store, "profiles_dir": REPO / "device_profiles"},
        objective=objective,
        calibration={"timed_runs": runs},
    )
    box = build_box(settings)
    package = Store(store).load(APP)
    loader, calibrator = measuring_loader(box)
    t0 = time.perf_counter()
    first = loader.select(package)
    first_s, first_load = time.perf_counter() - t0, _load()
    cached_loader = measuring_loader(build_box(settings))[0]  # a restart: cache only
    t0 = time.perf_counter()
    cached_loader.select(package)
    cached_s, cached_load = time.perf_counter() - t0, _load()
    assert first.chosen is not None and first.chosen.measured is not None
    chosen = first.chosen
    qualifying = [c for c in first.ranked if c.measured is not None and c.measured.p50_us]
    fastest = min(qualifying, key=lambda c: c.measured.p50_us or 0)  # type: ignore[union-attr]
    pair = {"chosen": chosen, "fastest": fastest}
    times: dict[str, list[float]] = {"chosen": [], "fastest": []}
    for _ in range(rounds):  # interleaved, so load elsewhere hits both alike
        for name, c in pair.items():
            times[name].append(_p50_now(loader, package, c.variant.variant, c.targets[0], runs))
    chosen_us = statistics.median(times["chosen"])
    fastest_us = statistics.median(times["fastest"])
    budget = calibrator.budget_s(package)
    limit = 1.10 if objective == "fastest" else settings.balanced_factor
    return {
        "objective": objective,
        "chosen": f"{chosen.variant.variant} on {chosen.backend}/{chosen.device}",
        "fastest": f"{fastest.variant.variant} on {fastest.backend}/{fastest.device}",
        "chosen_p50_us": round(chosen_us, 1),
        "fastest_p50_us": round(fastest_us, 1),
        "ratio": round(chosen_us / fastest_us, 3),
        "ratio_target": limit,
        "ratio_load_avg_1m": _load(),
        "calibration_s": round(first_s, 3),
        "budget_s": budget,
        "calibration_load_avg_1m": first_load,
        "candidates": len(calibrator.last[APP]["measurements"]),
        "cached_start_s": round(cached_s, 4),
        "cached_vs_first": round(cached_s / first_s, 4),
        "cached_load_avg_1m": cached_load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a store with the demo (default: built)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per candidate")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved re-timing rounds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    store = args.store
    if store is None:
        store = Path(tempfile.mkdtemp(prefix="hf-cal-store-"))
        build_demo_catalog(store)
    rows = [bench_objective(store, o, args.runs, args.rounds) for o in ("fastest", "balanced")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['objective']:8}  chosen {r['chosen']} p50 {r['chosen_p50_us']} us vs fastest "
            f"{r['fastest']} {r['fastest_p50_us']} us: {r['ratio']}x (target <= "
            f"{r['ratio_target']}x)  [load {r['ratio_load_avg_1m']}]"
        )
        print(
            f"          calibration {r['calibration_s']} s for {r['candidates']} candidates "
            f"(budget {r['budget_s']} s) [load {r['calibration_load_avg_1m']}]; cached start "
            f"{r['cached_start_s']} s = {r['cached_vs_first']}x [load {r['cached_load_avg_1m']}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
