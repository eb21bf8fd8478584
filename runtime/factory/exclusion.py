"""What to keep in float: a measured search, for int8 (nodes) and fp16 (operator types).

A lower-precision copy of a real conv net can lose the model's outputs (issue 24: every
row of a detector's fp16 copy outside the fidelity tolerance, an int8 copy at 38 %
relative error). The search keeps parts of the graph in float, chosen by measuring, not
guessing: each trial writes a copy with a set of names kept in float and scores it with
the package's own metric on the golden rows, plus the mean relative distance of the first
output from the source's (a signal that still moves when every row is outside the
tolerance and the metric reads 0).

The candidates come in graph order and are tried in contiguous groups (at most
``GROUPS`` a round): the group whose float copy helps most is kept in float, after
halving it while a half keeps most of the gain, so a few sensitive nodes are found in
a logarithmic number of trials instead of one trial per node. Rounds go on until the drop
is within bounds, nothing helps, or the deadline passes; the best copy so far is always
on disk (``on_better``), so a search stopped from outside has kept what it found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

GROUPS = 8
KEEP_GAIN = 0.75  # a half of a group replaces it when it keeps this share of the gain


@dataclass(frozen=True)
class Trial:
    """A scored copy: quality in bp, and the mean relative L2 distance of its first output
    from the source's (0 when unknown)."""

    quality_bp: int
    error: float = 0.0
    artifact: str = ""  # the trial copy's file, when the evaluator keeps one


Evaluate = Callable[[Sequence[str]], Trial]  # names kept in float -> the copy's score


@dataclass
class FloatSearch:
    """What a search did, for the build report."""

    what: str  # "nodes" or "operator types"
    before_bp: int
    after_bp: int
    before_error: float = 0.0
    after_error: float = 0.0
    kept_float: list[str] = field(default_factory=list)
    trials: int = 0
    stopped: str = "within bounds"

    def to_dict(self) -> dict[str, object]:
        return {
            "what": self.what,
            "before_bp": self.before_bp,
            "after_bp": self.after_bp,
            "before_error": round(self.before_error, 5),
            "after_error": round(self.after_error, 5),
            "kept_float": list(self.kept_float),
            # the name the int8 report used before fp16 had a search too
            "excluded": list(self.kept_float),
            "trials": self.trials,
            "stopped": self.stopped,
        }


def relative_error(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Mean over rows of |y - y_ref| / |y_ref| (L2 norms of each row's first output)."""
    got = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if got.shape != ref.shape:
        return float("inf")
    dist = np.linalg.norm(got - ref, axis=1)
    scale = np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    value = float(np.mean(dist / scale))
    return value if np.isfinite(value) else float("inf")


def _key(t: Trial) -> tuple[int, float]:
    return (t.quality_bp, -t.error)


def _groups(items: Sequence[str], n: int) -> list[list[str]]:
    n = max(1, min(n, len(items)))
    size = -(-len(items) // n)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def keep_in_float(
    candidates: Sequence[str],
    evaluate: Evaluate,
    first: Trial,
    *,
    what: str,
    target_bp: int,
    deadline: float,
    on_better: Callable[[Sequence[str], Trial], None] = lambda kept, t: None,
    discard: Callable[[Trial], None] = lambda t: None,
    groups: int = GROUPS,
) -> FloatSearch:
    """Search from ``first`` (the copy with nothing kept in float) until a copy scores at
    least ``target_bp``. ``evaluate(kept)`` writes and scores a trial copy; ``on_better``
    is called with each better one (the caller moves its artifact into place), and
    ``discard`` with every trial that was not taken."""
    search = FloatSearch(what, first.quality_bp, first.quality_bp, first.error, first.error)
    best, kept = first, list[str]()
    remaining = list(candidates)
    made: list[Trial] = []

    def ok(t: Trial) -> bool:
        return t.quality_bp >= target_bp

    def out_of_time() -> bool:
        return time.monotonic() > deadline

    def trial(names: Sequence[str]) -> Trial:
        search.trials += 1
        t = evaluate([*kept, *names])
        made.append(t)
        return t

    def drop_all_but(taken: Trial | None) -> None:
        for t in made:
            if t is not taken:
                discard(t)
        made.clear()

    while not ok(best):
        if not remaining:
            search.stopped = f"no further {what} to keep in float"
            break
        if out_of_time():
            search.stopped = "time budget spent"
            break
        scored: list[tuple[list[str], Trial]] = []
        for group in _groups(remaining, groups):
            if out_of_time():
                break
            scored.append((group, trial(group)))
        if not scored:
            search.stopped = "time budget spent"
            break
        group, t = max(scored, key=lambda gt: _key(gt[1]))
        if _key(t) <= _key(best):
            search.stopped = f"no {what} kept in float helps"
            drop_all_but(None)
            break
        group, t = _narrow(group, t, best, trial, ok, out_of_time)
        kept.extend(group)
        remaining = [c for c in remaining if c not in group]
        best = t
        on_better(list(kept), t)
        drop_all_but(t)
        log.info("kept in float: %s -> %d bp (error %.4f)", group, t.quality_bp, t.error)
    drop_all_but(None)
    search.after_bp, search.after_error, search.kept_float = best.quality_bp, best.error, kept
    return search


def _narrow(
    group: list[str],
    t: Trial,
    best: Trial,
    trial: Callable[[Sequence[str]], Trial],
    ok: Callable[[Trial], bool],
    out_of_time: Callable[[], bool],
) -> tuple[list[str], Trial]:
    """Halve ``group`` while one half keeps most of what the whole group gained."""
    while len(group) > 1 and not out_of_time():
        half = len(group) // 2
        halves = [(h, trial(h)) for h in (group[:half], group[half:])]
        h, th = max(halves, key=lambda ht: _key(ht[1]))
        if ok(t):
            good = ok(th)
        else:
            gain, gain_h = best.error - t.error, best.error - th.error
            good = th.quality_bp >= t.quality_bp and gain_h >= KEEP_GAIN * gain
        if not good:
            break
        group, t = h, th
    return group, t


# --- the in-process int8 search the demo factory uses -----------------------------------


def int8_static_within(
    src: Path,
    dst: Path,
    calibration: Mapping[str, np.ndarray],
    *,
    scheme: str,
    score: Callable[[Path], int],
    reference_bp: int,
    max_drop_bp: int,
    deadline: float,
) -> FloatSearch:
    """Write the int8 model to ``dst`` (fp32 ``src``) with nodes kept in float until its
    quality, ``score(path)``, is within ``max_drop_bp`` of ``reference_bp``."""
    from runtime.factory.onnx_variants import make_int8_static, quantizable_nodes

    make_int8_static(src, dst, calibration, scheme=scheme)
    count = iter(range(1 << 30))

    def evaluate(kept: Sequence[str]) -> Trial:
        path = dst.with_name(f".trial-{next(count)}-{dst.name}")
        make_int8_static(src, path, calibration, scheme=scheme, exclude=kept)
        return Trial(score(path), artifact=str(path))

    return keep_in_float(
        quantizable_nodes(src),
        evaluate,
        Trial(score(dst)),
        what="nodes",
        target_bp=reference_bp - max_drop_bp,
        deadline=deadline,
        on_better=lambda kept, t: _move(Path(t.artifact), dst),
        discard=lambda t: Path(t.artifact).unlink(missing_ok=True),
    )


def _move(src: Path, dst: Path) -> None:
    src.replace(dst)
