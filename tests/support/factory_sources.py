"""Fixtures for the variant factory (a plugin of tests/conftest.py): source models and
golden sets written here, and ``cli``, the `headframe` command run in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.catalog.golden import write_npz
from runtime.cli import app
from tests.support.source_models import (
    conv_classifier,
    embedding_head,
    images,
    noisy_labels,
    outlier_features,
    outlier_mlp,
    run_onnx,
)


@dataclass(frozen=True)
class Source:
    model: Path
    golden: Path
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None


def cli(*args: str | Path) -> tuple[int, str, str]:
    """``headframe ARGS`` in-process: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def conv_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """The conv classifier and a 200-row labelled golden set (labels: the model's own
    argmax with a tenth of them changed, so fp32 scores about 90%)."""
    d = tmp_path_factory.mktemp("conv")
    model = conv_classifier(d / "conv.onnx")
    x = images(200)
    labels = noisy_labels(run_onnx(model, {"image": x}))
    golden = write_npz(d / "golden.npz", {"image": x, "labels": labels})
    return Source(model, golden, {"image": x}, labels)


@pytest.fixture(scope="module")
def embedding_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    d = tmp_path_factory.mktemp("emb")
    model = embedding_head(d / "emb.onnx")
    x = np.random.default_rng(7).normal(0, 1, (150, 16)).astype(np.float32)
    golden = write_npz(d / "golden.npz", {"features": x})
    return Source(model, golden, {"features": x})


@pytest.fixture(scope="module")
def outlier_source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    d = tmp_path_factory.mktemp("outlier")
    model = outlier_mlp(d / "outlier.onnx")
    x = outlier_features(300)
    golden = write_npz(d / "golden.npz", {"features": x})
    return Source(model, golden, {"features": x})
