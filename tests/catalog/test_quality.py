"""The metrics on hand-made arrays: what each counts, and where its edges are."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.catalog.quality import (
    fidelity_bp,
    perplexity,
    score_bp,
    share_bp,
    token_agreement_bp,
    top1_bp,
)


def test_share_rounds_half_up() -> None:
    assert share_bp(1, 3) == 3333 and share_bp(2, 3) == 6667 and share_bp(1, 8) == 1250
    assert share_bp(0, 0) == 0


def test_top1_and_agreement() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert top1_bp(scores, np.array([0, 1, 1, 1])) == 7500
    assert score_bp("agreement", scores, {"ref_top1": np.array([0, 1, 0, 1])}) == 10_000


def test_fidelity_is_relative_l2_per_row() -> None:
    ref = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    got = ref + np.array([[0.25, 0.0], [0.06, 0.0], [0.0, 0.0]])
    # row 0: 0.25 / 5 = 0.05 passes at 5%; row 1: 0.06 / 1 fails; row 2 exact
    assert fidelity_bp(got, ref, 0.05) == 6667
    assert fidelity_bp(got, ref, 0.07) == 10_000
    with pytest.raises(ValueError, match="differ in shape"):
        fidelity_bp(got[:2], ref, 0.05)


def test_token_agreement_and_perplexity() -> None:
    assert token_agreement_bp(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 7500
    uniform = np.zeros((5, 4))
    assert perplexity(uniform, [0, 1, 2, 3, 0]) == pytest.approx(4.0)
    with pytest.raises(KeyError):
        score_bp("token_agreement", np.array([1]), {})
