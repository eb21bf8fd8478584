"""Quality on the golden set: one number per variant, in basis points.

One place computes every metric, so ``models build``, the fleet trial and any on-box
measurement read a package's ``accuracy_bp`` the same way (package.toml names the
metric; docs/model-package.md "Quality" states the rules):

- ``top1``: share of rows whose argmax of the first output equals the label;
- ``agreement``: share of rows whose argmax equals the source model's (no labels);
- ``fidelity``: share of rows whose first output is within a relative L2 distance
  ``tolerance`` of the source model's: ``|y - y_ref| <= tolerance * |y_ref|``;
- ``token_agreement``: share of positions whose next-token argmax equals the source's.

Pure numpy: no runtime, no file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

import numpy as np

from runtime.catalog.package import QualityMetric

METRICS: tuple[str, ...] = get_args(QualityMetric)  # the one list: catalog.py
DEFAULT_FIDELITY_TOLERANCE = 0.05
# A row whose reference output is all zeros is compared absolutely against this floor.
_NORM_FLOOR = 1e-12


def share_bp(hits: int, total: int) -> int:
    """``hits / total`` in basis points, rounded half up; 0 for an empty set."""
    if total <= 0:
        return 0
    return (hits * 10_000 * 2 + total) // (2 * total)


def _rows(outputs: np.ndarray) -> np.ndarray:
    arr = np.asarray(outputs)
    return arr.reshape(len(arr), -1) if arr.ndim != 1 else arr.reshape(-1, 1)


def top1_ids(outputs: np.ndarray) -> np.ndarray:
    """The argmax of each row of a classifier's output (last axis), as int64."""
    return np.asarray(np.argmax(np.asarray(outputs), axis=-1), dtype=np.int64).reshape(-1)


def top1_bp(outputs: np.ndarray, labels: np.ndarray) -> int:
    ids = top1_ids(outputs)
    labels = np.asarray(labels).reshape(-1)
    return share_bp(int(np.sum(ids == labels)), len(labels))


def agreement_bp(outputs: np.ndarray, ref_top1: np.ndarray) -> int:
    return top1_bp(outputs, ref_top1)


def fidelity_bp(outputs: np.ndarray, ref_outputs: np.ndarray, tolerance: float) -> int:
    """Share of rows within ``tolerance`` relative L2 distance of the reference rows."""
    got = _rows(outputs).astype(np.float64)
    ref = _rows(ref_outputs).astype(np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"outputs {got.shape} and reference {ref.shape} differ in shape")
    dist = np.linalg.norm(got - ref, axis=1)
    scale = np.maximum(np.linalg.norm(ref, axis=1), _NORM_FLOOR)
    return share_bp(int(np.sum(dist <= tolerance * scale)), len(ref))


def token_agreement_bp(next_ids: np.ndarray, ref_next_ids: np.ndarray) -> int:
    got = np.asarray(next_ids).reshape(-1)
    ref = np.asarray(ref_next_ids).reshape(-1)
    if got.shape != ref.shape:
        raise ValueError(f"{len(got)} next tokens against {len(ref)} reference tokens")
    return share_bp(int(np.sum(got == ref)), len(ref))


def score_bp(metric: str, outputs: np.ndarray, golden: Mapping[str, np.ndarray]) -> int:
    """The quality of ``outputs`` (the first output over every golden row, or next-token
    ids for text) under ``metric``, reading the references from the golden arrays
    (runtime.catalog.golden names them). KeyError when the golden set lacks them."""
    if metric == "top1":
        return top1_bp(outputs, golden["labels"])
    if metric == "agreement":
        return agreement_bp(outputs, golden["ref_top1"])
    if metric == "fidelity":
        tol = float(golden.get("fidelity_tolerance", DEFAULT_FIDELITY_TOLERANCE))
        return fidelity_bp(outputs, golden["ref_output"], tol)
    if metric == "token_agreement":
        return token_agreement_bp(outputs, golden["ref_next"])
    raise ValueError(f"unknown quality metric {metric!r} (one of {', '.join(METRICS)})")


def perplexity(logits: np.ndarray, targets: Sequence[int] | np.ndarray) -> float:
    """exp of the mean negative log-likelihood of ``targets`` under row-wise ``logits``;
    capped at 1e300 so that reports stay valid JSON (a random model overflows exp)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(targets)), np.asarray(targets)]
    if not len(nll):
        return 0.0
    return float(np.exp(min(float(nll.mean()), 690.0)))
