"""The demo factory makes real, distinct, measured variants, reproducibly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest

from runtime.catalog import Store
from runtime.demo import build_demo_catalog
from runtime.demo.data import DigitsSplit, normalise
from runtime.demo.train import accuracy_bp

APP = "part-id-reader"
SAMPLE_BP = 10_000 / 360  # one golden sample, in basis points


def _onnx_predict(path: Path, pixels: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["probabilities"], {"pixels": pixels})[0])


def _openvino_predict(path: Path, pixels: np.ndarray) -> np.ndarray:
    compiled = ov.Core().compile_model(str(path), "CPU")
    return np.asarray(compiled({"pixels": pixels})[compiled.output("probabilities")])


def test_demo_package_layout_and_schema(demo_store: Path) -> None:
    package = Store(demo_store).load(APP)
    assert package.version == "1.0.0"
    assert package.meta.lineage.foundation == "digits-mlp-base"
    assert package.meta.lineage.sector == "manufacturing"
    assert [(t.name, t.datatype, t.shape) for t in package.meta.inputs] == [
        ("pixels", "FP32", (-1, 64))
    ]
    assert [(t.name, t.datatype, t.shape) for t in package.meta.outputs] == [
        ("probabilities", "FP32", (-1, 10))
    ]
    ids = {v.id for v in package.variants}
    assert ids == {
        "fp32",
        "pruned50-fp32",
        "pruned75-fp32",
        "pruned75-int8",
        "pruned50-openvino-fp16",
    }
    ov_variant = package.variant("pruned50-openvino-fp16")
    assert ov_variant.meta.format == "openvino"
    assert {f.path for f in ov_variant.meta.files} == {"model.xml", "model.bin"}
    for v in package.variants:
        assert v.entrypoint.is_file()
        assert v.meta.bytes == sum(f.size for f in v.meta.files)
        assert v.meta.accuracy_bp is not None and v.meta.accuracy_bp >= 9000
        assert v.meta.latency_us is not None and v.meta.latency_us > 0
        assert v.meta.peak_memory_bytes > v.meta.bytes


def test_variants_really_differ_in_size(demo_store: Path) -> None:
    package = Store(demo_store).load(APP)
    size = {v.id: v.meta.bytes for v in package.variants}
    assert min(size.values()) * 3 <= size["fp32"]
    assert size["fp32"] > size["pruned50-fp32"] > size["pruned75-fp32"] > size["pruned75-int8"]
    # fp16 weights: the IR of the 50 % model is well under its fp32 ONNX
    assert size["pruned50-openvino-fp16"] < 0.6 * size["pruned50-fp32"]
    # int8 really is int8: about a quarter of the fp32 file it came from
    assert size["pruned75-int8"] < 0.4 * size["pruned75-fp32"]


def test_golden_set_is_the_held_out_split(demo_store: Path, digits_split: DigitsSplit) -> None:
    package = Store(demo_store).load(APP)
    assert package.meta.golden is not None
    with np.load(package.path / package.meta.golden.file) as golden:
        assert golden["pixels"].dtype == np.float32
        assert golden["pixels"].shape == (package.meta.golden.samples, 64)
        assert golden["pixels"].max() <= 16.0  # raw values: the graph normalises
        np.testing.assert_array_equal(golden["pixels"], digits_split.test_pixels)
        np.testing.assert_array_equal(golden["labels"], digits_split.test_labels)


def test_accuracies_match_sklearn(
    demo_store: Path, digits_split: DigitsSplit, sklearn_models: dict[str, Any]
) -> None:
    package = Store(demo_store).load(APP)
    pixels, labels = digits_split.test_pixels, digits_split.test_labels
    expected = {key: clf.predict(normalise(pixels)) for key, clf in sklearn_models.items()}
    source = {
        "fp32": "fp32",
        "pruned50-fp32": "pruned50",
        "pruned75-fp32": "pruned75",
        "pruned75-int8": "pruned75",
        "pruned50-openvino-fp16": "pruned50",
    }
    for v in package.variants:
        if v.meta.format == "openvino":
            probs = _openvino_predict(v.entrypoint, pixels)
        else:
            probs = _onnx_predict(v.entrypoint, pixels)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
        predicted = probs.argmax(axis=1)
        agree = float(np.mean(predicted == expected[source[v.id]]))
        # fp32 graphs compute what sklearn computes; int8 and fp16 may flip a few near-ties
        assert agree >= (0.99 if v.meta.precision == "fp32" else 0.97), (v.id, agree)
        assert v.meta.accuracy_bp == accuracy_bp(predicted, labels), v.id
        if v.meta.precision == "fp32":
            sk_bp = accuracy_bp(expected[source[v.id]], labels)
            assert abs(v.meta.accuracy_bp - sk_bp) <= SAMPLE_BP + 1, v.id


def test_build_is_idempotent(demo_store: Path) -> None:
    before = (demo_store / APP / "1.0.0" / "package.toml").stat().st_mtime_ns
    packages = build_demo_catalog(demo_store)
    assert [p.version for p in packages] == ["1.0.0"]
    assert (demo_store / APP / "1.0.0" / "package.toml").stat().st_mtime_ns == before
    assert not [p for p in demo_store.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_same_seed_same_accuracies(demo_store: Path, tmp_path: Path) -> None:
    rebuilt = build_demo_catalog(tmp_path / "store", seed=0)[0]
    first = Store(demo_store).load(APP)
    acc = {v.id: v.meta.accuracy_bp for v in first.variants}
    assert {v.id: v.meta.accuracy_bp for v in rebuilt.variants} == acc
    # the fp32 weights are bit-identical, so are their files
    sha = {v.id: v.meta.files[0].sha256 for v in first.variants if v.meta.precision == "fp32"}
    assert {v.id: v.meta.files[0].sha256 for v in rebuilt.variants if v.id in sha} == sha
    assert rebuilt.meta.golden == first.meta.golden


@pytest.mark.slow
def test_demo_builds_without_openvino(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A box with headframe[demo] but not the openvino extra: the import fails, as it
    # would there (a None entry in sys.modules makes `import openvino` raise).
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    package = build_demo_catalog(tmp_path / "store")[0]
    assert {v.meta.format for v in package.variants} == {"onnx"}
    assert len(package.variants) == 4
