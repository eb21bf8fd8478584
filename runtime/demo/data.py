"""The demo's data: scikit-learn's bundled 8x8 digits (no download), split deterministically.

Pixels stay raw (0..16, as sklearn ships them) everywhere outside the model: the graph
normalises them itself, so a client sends what the camera gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PIXEL_MAX = 16.0
N_FEATURES = 64
N_CLASSES = 10


@dataclass(frozen=True)
class DigitsSplit:
    """Train and held-out arrays: pixels FP32 [n, 64] raw 0..16, labels INT64 [n]."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    test_pixels: np.ndarray
    test_labels: np.ndarray


def load_split(seed: int = 0, test_fraction: float = 0.2) -> DigitsSplit:
    """A stratified split of the 1797 digits; the same seed gives the same split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return DigitsSplit(
        np.ascontiguousarray(x_tr),
        np.ascontiguousarray(y_tr),
        np.ascontiguousarray(x_te),
        np.ascontiguousarray(y_te),
    )


def normalise(pixels: np.ndarray) -> np.ndarray:
    """What the graph's first node does: 0..16 -> 0..1."""
    return np.asarray(pixels, dtype=np.float32) / np.float32(PIXEL_MAX)
