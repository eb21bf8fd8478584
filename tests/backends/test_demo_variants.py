"""Every demo variant through the real loader and backends, against scikit-learn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.catalog import ModelPackage, Store
from runtime.config import Settings
from runtime.demo.data import load_split, normalise
from runtime.demo.factory import APP, VARIANTS, train_models
from runtime.demo.train import accuracy_bp
from runtime.loading.loader import VariantLoader
from tests.support.box import box_for
from tests.support.synthetic import local_report, make_profile

pytestmark = pytest.mark.slow

SOURCE = {spec.variant: spec.model for spec in VARIANTS}  # variant -> sklearn model key


@pytest.fixture(scope="module")
def package(demo_store: Path) -> ModelPackage:
    return Store(demo_store).load(APP)


@pytest.fixture(scope="module")
def golden(package: ModelPackage) -> dict[str, np.ndarray]:
    with np.load(package.path / "golden.npz") as data:
        return {"pixels": data["pixels"], "labels": data["labels"]}


@pytest.fixture(scope="module")
def sklearn_labels(golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    models: dict[str, Any] = train_models(load_split(0), seed=0)
    return {key: clf.predict(normalise(golden["pixels"])) for key, clf in models.items()}


def _loader(tmp_path: Path, **profile: Any) -> VariantLoader:
    settings = Settings(paths={"cache_dir": tmp_path / "cache"})
    return VariantLoader(box_for(settings, local_report(), make_profile(**profile)))


def _labels(loaded: Any, pixels: np.ndarray) -> np.ndarray:
    return loaded.backend.infer({"pixels": pixels})["probabilities"].argmax(axis=1)


@pytest.mark.parametrize("variant_id", [spec.variant for spec in VARIANTS])
def test_every_demo_variant_loads_and_agrees_with_sklearn(
    variant_id: str, package, golden, sklearn_labels, tmp_path
) -> None:
    loaded = _loader(tmp_path)(package, pin=variant_id)
    assert loaded.variant.id == variant_id
    assert loaded.attempts[-1].ok
    predicted = _labels(loaded, golden["pixels"])
    agree = float(np.mean(predicted == sklearn_labels[SOURCE[variant_id]]))
    measured = accuracy_bp(predicted, golden["labels"])
    if loaded.variant.meta.precision == "int8":
        # Quantization may flip near-ties; it must still score what its metadata claims.
        assert agree >= 0.97, agree
        assert abs(measured - loaded.variant.meta.accuracy_bp) <= 30
    else:
        assert agree >= 0.99, (variant_id, agree)
    assert measured >= package.meta.accuracy_floor_bp


def test_openvino_and_onnxruntime_give_the_same_labels(package, golden, tmp_path) -> None:
    """The same fp32 ONNX file through each runtime, and the fp16 IR of the same network."""
    pixels = golden["pixels"]
    by_ort = _loader(tmp_path, targets=[{"backend": "onnx", "device": "cpu"}])(
        package, pin="pruned50-fp32"
    )
    by_ov = _loader(tmp_path, targets=[{"backend": "openvino", "device": "cpu"}])(
        package, pin="pruned50-fp32"
    )
    ir = _loader(tmp_path)(package, pin="pruned50-openvino-fp16")
    assert (by_ort.backend.name, by_ov.backend.name, ir.backend.name) == (
        "onnx",
        "openvino",
        "openvino",
    )
    ort_labels = _labels(by_ort, pixels)
    np.testing.assert_array_equal(_labels(by_ov, pixels), ort_labels)
    assert float(np.mean(_labels(ir, pixels) == ort_labels)) >= 0.99


def test_unpinned_load_picks_the_smallest_variant_that_meets_the_floor(package, tmp_path) -> None:
    loaded = _loader(tmp_path)(package)
    qualifying = [
        v.meta for v in package.variants if v.meta.accuracy_bp >= package.meta.accuracy_floor_bp
    ]
    assert loaded.variant.meta.bytes == min(v.bytes for v in qualifying)


def test_every_demo_variant_loads_with_this_machines_own_profile(package, golden, tmp_path) -> None:
    """The probe and the matched profile, as the daemon does it: no hand-made profile."""
    from runtime.hardware import probe
    from runtime.profiles import load_profiles, match

    report = probe("/")
    profile = match(report, load_profiles()).profile
    loader = VariantLoader(
        box_for(Settings(paths={"cache_dir": tmp_path / "cache"}), report, profile)
    )
    for variant in package.variants:
        loaded = loader(package, pin=variant.id)
        assert loaded.attempts[-1].ok, [a.describe() for a in loaded.attempts]
        measured = accuracy_bp(_labels(loaded, golden["pixels"]), golden["labels"])
        # Whichever backend the profile put first, the variant scores what its metadata says.
        assert abs(measured - variant.meta.accuracy_bp) <= 30, (variant.id, loaded.backend.name)
