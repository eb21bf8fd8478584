"""int8-static with automatic layer exclusion.

Quantize everything; when the quality drop against fp32 exceeds ``max_drop_bp``, measure
what each quantized node costs (quantize with that one node kept in float, score it),
then keep the costliest nodes in float, one more at a time, until the drop is within
bounds or the deadline passes. Measuring beats guessing: the score is the package's own
metric on the application's own golden rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.factory.onnx_variants import make_int8_static, quantizable_nodes

log = logging.getLogger(__name__)

Score = Callable[[Path], int]  # an int8 model file -> its quality in bp


@dataclass
class Int8Search:
    """What the search did: the quality before any exclusion and after, the nodes kept
    in float, the nodes measured, and why it stopped."""

    scheme: str
    before_bp: int
    after_bp: int
    excluded: list[str] = field(default_factory=list)
    measured: dict[str, int] = field(default_factory=dict)
    stopped: str = "within bounds"

    def to_dict(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "before_bp": self.before_bp,
            "after_bp": self.after_bp,
            "excluded": list(self.excluded),
            "node_gain_bp": dict(self.measured),
            "stopped": self.stopped,
        }


def int8_static_within(
    src: Path,
    dst: Path,
    calibration: Mapping[str, np.ndarray],
    *,
    scheme: str,
    score: Score,
    reference_bp: int,
    max_drop_bp: int,
    deadline: float,
) -> Int8Search:
    """Write the int8 model to ``dst`` (fp32 ``src``) and return what the search did."""
    make_int8_static(src, dst, calibration, scheme=scheme)
    q = score(dst)
    search = Int8Search(scheme, q, q)
    if reference_bp - q <= max_drop_bp:
        return search
    trial = dst.with_name(".trial-" + dst.name)
    try:
        for node in quantizable_nodes(src):
            if time.monotonic() > deadline:
                search.stopped = "time budget spent while measuring nodes"
                break
            make_int8_static(src, trial, calibration, scheme=scheme, exclude=[node])
            search.measured[node] = score(trial) - q
        order = sorted(search.measured, key=lambda n: -search.measured[n])
        for node in order:
            if search.measured[node] <= 0 and search.excluded:
                # the rest cost nothing measurable: float would only add bytes
                search.stopped = "no further node helps"
                break
            if time.monotonic() > deadline:
                search.stopped = "time budget spent while excluding"
                break
            search.excluded.append(node)
            make_int8_static(src, trial, calibration, scheme=scheme, exclude=search.excluded)
            search.after_bp = score(trial)
            trial.replace(dst)
            log.info("int8: %s kept in float -> %d bp", node, search.after_bp)
            if reference_bp - search.after_bp <= max_drop_bp:
                search.stopped = "within bounds"
                break
        else:
            if reference_bp - search.after_bp > max_drop_bp:
                search.stopped = "no further node to keep in float"
    finally:
        trial.unlink(missing_ok=True)
    return search
