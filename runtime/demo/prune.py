"""Structured pruning: remove whole hidden units, then fine-tune briefly.

A unit's score is the L2 norm of its incoming weights times that of its outgoing
weights: a unit that hears little or says little matters little. Removing units (not
single weights) makes every matrix smaller, so the file and the compute really shrink.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.demo.data import DigitsSplit
from runtime.demo.train import fit_quietly, make_mlp

FINE_TUNE_EPOCHS = 10


def keep_indices(w_in: np.ndarray, w_out: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` hidden units with the largest norm score, in their original order."""
    score = np.linalg.norm(w_in, axis=0) * np.linalg.norm(w_out, axis=1)
    # stable sort on -score: equal scores keep index order, so the choice is deterministic
    best = np.argsort(-score, kind="stable")[:keep]
    return np.sort(best)


def prune_layers(
    coefs: list[np.ndarray], intercepts: list[np.ndarray], ratio: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Remove ``ratio`` of the units of every hidden layer; returns new weight lists."""
    coefs = [np.array(c, copy=True) for c in coefs]
    intercepts = [np.array(b, copy=True) for b in intercepts]
    for i in range(len(coefs) - 1):  # hidden layer i sits between coefs[i] and coefs[i+1]
        width = coefs[i].shape[1]
        keep = max(1, round(width * (1.0 - ratio)))
        idx = keep_indices(coefs[i], coefs[i + 1], keep)
        coefs[i] = coefs[i][:, idx]
        intercepts[i] = intercepts[i][idx]
        coefs[i + 1] = coefs[i + 1][idx, :]
    return coefs, intercepts


def prune_and_fine_tune(base: Any, split: DigitsSplit, ratio: float, seed: int = 0) -> Any:
    """A new MLPClassifier with ``ratio`` of every hidden layer removed, fine-tuned for a
    few epochs from the surviving weights."""
    coefs, intercepts = prune_layers(list(base.coefs_), list(base.intercepts_), ratio)
    hidden = tuple(c.shape[1] for c in coefs[:-1])
    clf = make_mlp(hidden, seed, 1, warm_start=True)
    fit_quietly(clf, split)  # one epoch only to build sklearn's internal state ...
    clf.coefs_ = coefs  # ... which the pruned weights then replace
    clf.intercepts_ = intercepts
    clf.set_params(max_iter=FINE_TUNE_EPOCHS, n_iter_no_change=FINE_TUNE_EPOCHS + 1)
    return fit_quietly(clf, split)
