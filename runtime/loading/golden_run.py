"""Running a package's golden set through a loaded backend: the one implementation that
the fleet trial (runtime/fleet/trial.py) and calibration on the box (runtime/loading/calibrator.py)
both use, so a variant's quality is scored on the box exactly as the trial scores it, in
the package's metric (runtime/catalog/quality.py), from the golden file alone.

BLOCKING (native inference): callers run it on a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.catalog import ModelPackage
from runtime.catalog.golden import RESERVED as REFERENCE_ARRAYS
from runtime.catalog.golden import RowLayout, load_arrays
from runtime.catalog.quality import score_bp
from runtime.errors import BuildInputError

BATCH = 64  # rows per inference call while scoring
WARMUP = 3  # the first calls warm caches and allocators; not timed


class OutOfTime(Exception):
    """The deadline passed between two calls: the caller's budget is spent."""


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise OutOfTime


class GoldenProblem(Exception):
    """The golden file cannot be scored (an input or a reference array is missing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GoldenScore:
    """``quality_bp`` in ``metric`` over ``samples`` rows (None: nothing this backend can
    score, ``note`` says why); ``request(i, batch)`` builds the i-th timed request."""

    quality_bp: int | None
    metric: str
    samples: int
    note: str
    request: Callable[[int, int], Any] | None = None


def read_golden(package: ModelPackage) -> dict[str, np.ndarray] | None:
    """Every array of the package's golden file, or None when it has none; GoldenProblem
    when it cannot be read or would inflate past the golden limit (its declared sizes
    are checked before anything is inflated: runtime.catalog.golden.load_arrays)."""
    golden = package.meta.golden
    if golden is None:
        return None
    try:
        return load_arrays(package.path / golden.file)
    except BuildInputError as e:
        raise GoldenProblem(e.message) from None


def score(
    package: ModelPackage,
    backend: Any,
    data: dict[str, np.ndarray],
    deadline: float | None = None,
) -> GoldenScore:
    """Score ``backend`` on the golden ``data`` in the package's metric. Raises
    GoldenProblem when the file lacks what the metric needs, OutOfTime when
    ``deadline`` (time.monotonic()) passes between two calls."""
    metric = package.meta.metric
    if package.meta.task == "text":
        next_token_ids = getattr(backend, "next_token_ids", None)
        if next_token_ids is None or "tokens" not in data:
            return GoldenScore(None, metric, 0, "no token golden set this backend can score")
        tokens = data["tokens"]
        quality = score_bp(metric, next_token_ids(tokens), data)
        prefix = tokens[: min(len(tokens), 32)]

        def text_request(i: int, batch: int) -> Any:
            return lambda: next_token_ids(prefix)

        return GoldenScore(quality, metric, len(tokens) - 1, "", text_request)
    # Inputs by name; the rest of the file is the metric's references (labels, the
    # source model's outputs), read by the one scorer models build uses too.
    names = [s.name for s in package.meta.inputs] or sorted(set(data) - REFERENCE_ARRAYS)
    missing = [n for n in names if n not in data]
    if missing:
        raise GoldenProblem(f"golden set lacks inputs {missing}")
    out_name = package.meta.outputs[0].name if package.meta.outputs else None
    n = len(data[names[0]])
    layout = RowLayout.of(package.meta.inputs, data)  # rows -> requests: one rule, golden.py
    firsts = []
    for request in layout.requests(data, names, BATCH):
        _check(deadline)
        outputs = backend.infer(request)
        firsts.append(outputs[out_name] if out_name else next(iter(outputs.values())))
    try:
        quality = score_bp(metric, np.concatenate(firsts, axis=0), data)
    except KeyError as e:
        raise GoldenProblem(f"golden set lacks {e} for the {metric} metric") from None

    def tensor_request(i: int, batch: int) -> Any:
        batch = layout.rows_per_request(batch)
        inputs = layout.request(data, names, [(i * batch + j) % n for j in range(batch)])
        return lambda: backend.infer(inputs)

    return GoldenScore(quality, metric, n, "", tensor_request)


def time_requests(
    request: Callable[[int, int], Any], runs: int, batch: int = 1, deadline: float | None = None
) -> list[float]:
    """Microseconds per request over ``runs`` timed calls (after WARMUP untimed ones) of
    ``batch`` golden rows each; stops early at ``deadline`` (time.monotonic()), checked
    before every call: OutOfTime when it passed before a call was timed."""
    timings: list[float] = []
    for i in range(runs + WARMUP):
        if deadline is not None and time.monotonic() > deadline:
            if not timings:
                raise OutOfTime
            break
        call = request(i, batch)
        t0 = time.perf_counter()
        call()
        if i >= WARMUP:
            timings.append((time.perf_counter() - t0) * 1e6)
    return timings
