"""The trial: a staged version must load with the real backend on this box and pass its
golden set (accuracy at or above the floor, p95 single-request latency within the
package's budget) before it may serve."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from runtime.catalog import ModelPackage
from runtime.loading import golden_run
from runtime.loading.golden_run import GoldenProblem, read_golden

log = logging.getLogger(__name__)

# loader(package, pin) -> LoadedModel (runtime.loading.loader.VariantLoader): .backend, .variant
Loader = Callable[[ModelPackage, str | None], Any]


@dataclass
class TrialResult:
    ok: bool
    reason: str
    accuracy_bp: int | None = None
    floor_bp: int | None = None
    p95_latency_us: int | None = None
    budget_us: int | None = None
    samples: int = 0
    backend: str = ""
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _p95(values: list[float]) -> float:
    return float(np.percentile(np.asarray(values), 95)) if values else 0.0


def run_trial(
    package: ModelPackage,
    variant_id: str,
    loader: Loader,
    *,
    floor_bp: int | None = None,
    latency_samples: int = 50,
) -> TrialResult:
    """Load ``variant_id`` of ``package`` and score it. Never raises for a bad model:
    a load error or a crash in inference is a failed trial with the reason."""
    floor = max(package.meta.accuracy_floor_bp, floor_bp or 0)
    budget = package.meta.latency_budget_us
    try:
        loaded = loader(package, variant_id)
    except Exception as e:
        return TrialResult(False, f"trial load failed: {e}", floor_bp=floor, budget_us=budget)
    backend = loaded.backend
    try:
        info = backend.info()
        result = TrialResult(
            False, "", floor_bp=floor, budget_us=budget, backend=info.backend, device=info.device
        )
        try:
            data = read_golden(package)
        except GoldenProblem as e:  # unreadable, or a bomb: the trial fails, saying why
            result.reason = e.reason
            return result
        if data is None:
            result.ok, result.reason = True, "loaded; no golden set to score"
            return result
        try:
            scored = golden_run.score(package, backend, data)
        except GoldenProblem as e:
            result.reason = e.reason
            return result
        metric = package.meta.metric
        result.accuracy_bp, result.samples = scored.quality_bp, scored.samples
        if package.meta.task == "text" or scored.request is None:
            if scored.quality_bp is None:
                result.ok, result.reason = True, f"loaded; {scored.note}"
            elif scored.quality_bp < floor:
                result.reason = (
                    f"golden-set {metric} {scored.quality_bp} bp is below the floor {floor} bp"
                )
            else:
                result.ok, result.reason = True, f"{metric} {scored.quality_bp} bp >= {floor} bp"
            return result
        n = scored.samples
        timings = golden_run.time_requests(scored.request, min(n, latency_samples))
        result.p95_latency_us = p95 = int(_p95(timings))
        accuracy = scored.quality_bp or 0  # a tensor score is always a number
        if accuracy < floor:
            result.reason = f"golden-set {metric} {accuracy} bp is below the floor {floor} bp"
        elif budget is not None and p95 > budget:
            result.reason = (
                f"p95 latency {result.p95_latency_us} us is over the budget {budget} us on this box"
            )
        else:
            result.ok = True
            result.reason = f"{metric} {accuracy} bp >= {floor} bp, p95 {p95} us"
        return result
    except Exception as e:
        log.exception("trial of %s %s crashed", package.application, package.version)
        return TrialResult(False, f"trial inference failed: {e}", floor_bp=floor, budget_us=budget)
    finally:
        try:
            backend.unload()
        except Exception:
            log.exception("unloading the trial model failed")
