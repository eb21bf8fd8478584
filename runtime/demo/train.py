"""Training the demo's base network: a scikit-learn MLP on the normalised digits.

scikit-learn's MLPClassifier is the reference implementation: tests and B-side backend
checks compare the exported graphs against its ``predict``. Everything is seeded, and
the numbers are small enough that BLAS gives the same result run after run.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from runtime.demo.data import DigitsSplit, normalise

# Two hidden layers wide enough that pruning changes the file size for real
# (fp32: about 0.67 MB; 75 % pruned: under 0.07 MB).
BASE_HIDDEN = (512, 256)
BASE_EPOCHS = 30
BATCH = 64


def make_mlp(hidden: tuple[int, ...], seed: int, epochs: int, warm_start: bool = False) -> Any:
    """An unfitted sklearn MLPClassifier with the demo's fixed training schedule."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=hidden,
        activation="relu",
        solver="adam",
        alpha=1e-4,
        batch_size=BATCH,
        learning_rate_init=1e-3,
        max_iter=epochs,
        shuffle=True,
        random_state=seed,
        warm_start=warm_start,
        tol=0.0,  # train exactly ``epochs`` epochs: the same work, the same weights
        n_iter_no_change=epochs + 1,
    )


def fit_quietly(clf: Any, split: DigitsSplit) -> Any:
    """``clf.fit`` on the training half; a short fixed schedule is on purpose, so sklearn's
    convergence warning is noise here."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(normalise(split.train_pixels), split.train_labels)
    return clf


def train_base(split: DigitsSplit, seed: int = 0) -> Any:
    """The full-width base model (an sklearn MLPClassifier)."""
    return fit_quietly(make_mlp(BASE_HIDDEN, seed, BASE_EPOCHS), split)


def layers(clf: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weights [in, out], bias [out]) per layer, float32."""
    return [
        (np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32))
        for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)
    ]


def accuracy_bp(predicted: np.ndarray, labels: np.ndarray) -> int:
    """Share of correct predictions in basis points (integer, rounded half up)."""
    correct = int(np.sum(np.asarray(predicted) == np.asarray(labels)))
    return (correct * 10_000 * 2 + len(labels)) // (2 * len(labels))
