"""The trial: a staged version must load with the real backend on this box and pass its
golden set (accuracy at or above the floor, p95 single-request latency within the
package's budget) before it may serve."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from runtime.catalog import ModelPackage
from runtime.factory.golden import RESERVED as REFERENCE_ARRAYS
from runtime.factory.quality import score_bp

log = logging.getLogger(__name__)

# loader(package, pin) -> LoadedModel (runtime.loader.VariantLoader): .backend, .variant
Loader = Callable[[ModelPackage, str | None], Any]
BATCH = 64


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


def _score_text(
    result: TrialResult, backend: Any, data: dict[str, np.ndarray], metric: str, floor: int
) -> TrialResult:
    """A text package: the golden tokens fed to the model, its next-token choices scored
    against the source's (token_agreement), where the backend can report them."""
    next_token_ids = getattr(backend, "next_token_ids", None)
    if next_token_ids is None or "tokens" not in data:
        result.ok, result.reason = True, "loaded; no token golden set this backend can score"
        return result
    result.accuracy_bp = score_bp(metric, next_token_ids(data["tokens"]), data)
    result.samples = len(data["tokens"]) - 1
    if result.accuracy_bp < floor:
        result.reason = f"golden-set {metric} {result.accuracy_bp} bp is below the floor {floor} bp"
    else:
        result.ok, result.reason = True, f"{metric} {result.accuracy_bp} bp >= {floor} bp"
    return result


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
        golden = package.meta.golden
        if golden is None:
            result.ok, result.reason = True, "loaded; no golden set to score"
            return result
        with np.load(package.path / golden.file) as npz:
            data = {k: npz[k] for k in npz.files}
        if package.meta.task == "text":
            return _score_text(result, backend, data, package.meta.metric, floor)
        # Inputs by name; the rest of the file is the metric's references (labels,
        # the source model's outputs), read by the one scorer models build uses too.
        names = [s.name for s in package.meta.inputs] or sorted(set(data) - REFERENCE_ARRAYS)
        missing = [n for n in names if n not in data]
        if missing:
            result.reason = f"golden set lacks inputs {missing}"
            return result
        out_name = package.meta.outputs[0].name if package.meta.outputs else None
        n = len(data[names[0]])
        firsts = []
        for i in range(0, n, BATCH):
            outputs = backend.infer({k: data[k][i : i + BATCH] for k in names})
            firsts.append(outputs[out_name] if out_name else next(iter(outputs.values())))
        metric = package.meta.metric
        try:
            result.accuracy_bp = score_bp(metric, np.concatenate(firsts, axis=0), data)
        except KeyError as e:
            result.reason = f"golden set lacks {e} for the {metric} metric"
            return result
        result.samples = n
        timings: list[float] = []
        for i in range(min(n, latency_samples) + 3):
            one = {k: data[k][i % n : i % n + 1] for k in names}
            t0 = time.perf_counter()
            backend.infer(one)
            if i >= 3:  # the first calls warm caches and allocators
                timings.append((time.perf_counter() - t0) * 1e6)
        result.p95_latency_us = int(_p95(timings))
        if result.accuracy_bp < floor:
            result.reason = (
                f"golden-set {metric} {result.accuracy_bp} bp is below the floor {floor} bp"
            )
        elif budget is not None and result.p95_latency_us > budget:
            result.reason = (
                f"p95 latency {result.p95_latency_us} us is over the budget {budget} us on this box"
            )
        else:
            result.ok = True
            result.reason = (
                f"{metric} {result.accuracy_bp} bp >= {floor} bp, p95 {result.p95_latency_us} us"
            )
        return result
    except Exception as e:
        log.exception("trial of %s %s crashed", package.application, package.version)
        return TrialResult(False, f"trial inference failed: {e}", floor_bp=floor, budget_us=budget)
    finally:
        try:
            backend.unload()
        except Exception:
            log.exception("unloading the trial model failed")
