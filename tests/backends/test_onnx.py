"""The onnxruntime backend on real ONNX files written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from runtime.backends.base import LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.catalog import Variant
from runtime.errors import BackendLoadError, BackendUnavailable
from tests.support.onnx_models import VariantSpec, mlp_model, write_package


def _reference(x: np.ndarray, hidden: int = 16, seed: int = 3) -> np.ndarray:
    """The same MLP computed with numpy from the model's own weights."""
    w = {
        t.name: numpy_helper.to_array(t)
        for t in mlp_model(hidden=hidden, seed=seed).graph.initializer
    }
    h = np.maximum(x @ w["w1"] + w["b1"], 0)
    logits = h @ w["w2"] + w["b2"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def variant(tmp_path: Path) -> Variant:
    return write_package(tmp_path / "store", [VariantSpec("m", hidden=16, seed=3)]).variants[0]


def test_loads_runs_and_matches_the_maths(variant: Variant, tmp_path: Path) -> None:
    backend = OnnxBackend()
    backend.load(variant, LoadOptions(cache_dir=str(tmp_path / "cache"), intra_op_threads=1))
    x = np.random.default_rng(0).uniform(0, 16, (5, 64)).astype(np.float32)
    out = backend.infer({"pixels": x})
    assert list(out) == ["probabilities"]
    np.testing.assert_allclose(out["probabilities"], _reference(x), rtol=1e-4, atol=1e-5)
    info = backend.info()
    assert (info.backend, info.device, info.detail["provider"]) == (
        "onnx",
        "cpu",
        "CPUExecutionProvider",
    )
    backend.unload()
    backend.unload()  # safe twice


def test_describe_maps_tensors_to_kserve_names_and_dynamic_batch(variant: Variant) -> None:
    backend = OnnxBackend()
    backend.load(variant, LoadOptions())
    schema = backend.describe()
    assert [(s.name, s.datatype, s.shape) for s in schema.inputs] == [("pixels", "FP32", (-1, 64))]
    assert [(s.name, s.datatype, s.shape) for s in schema.outputs] == [
        ("probabilities", "FP32", (-1, 10))
    ]


def test_optimised_graph_is_cached_by_sha256_and_reused(variant: Variant, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = OnnxBackend()
    first.load(variant, LoadOptions(cache_dir=str(cache)))
    assert first.info().detail["optimized_cache"] == "miss"
    cached = list((cache / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    assert cached[0].name.startswith(variant.meta.files[0].sha256[:32])
    assert not list((cache / "onnx").glob("*.tmp"))

    second = OnnxBackend()
    second.load(variant, LoadOptions(cache_dir=str(cache)))
    assert second.info().detail["optimized_cache"] == "hit"
    x = np.ones((2, 64), np.float32)
    np.testing.assert_allclose(
        second.infer({"pixels": x})["probabilities"], first.infer({"pixels": x})["probabilities"]
    )


def test_a_damaged_cache_entry_is_rebuilt_not_fatal(variant: Variant, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OnnxBackend().load(variant, LoadOptions(cache_dir=str(cache)))
    (entry,) = (cache / "onnx").glob("*.onnx")
    entry.write_bytes(b"not a model")
    backend = OnnxBackend()
    backend.load(variant, LoadOptions(cache_dir=str(cache)))
    assert backend.infer({"pixels": np.zeros((1, 64), np.float32)})["probabilities"].shape == (
        1,
        10,
    )
    assert entry.read_bytes() != b"not a model"


def test_a_garbage_model_file_fails_with_the_path_in_the_message(variant: Variant) -> None:
    variant.entrypoint.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BackendLoadError, match=r"model\.onnx: onnxruntime cannot load it"):
        OnnxBackend().load(variant, LoadOptions())


def test_a_missing_model_file_says_so(variant: Variant) -> None:
    variant.entrypoint.unlink()
    with pytest.raises(BackendLoadError, match="model file not found"):
        OnnxBackend().load(variant, LoadOptions())


def test_gpu_without_a_gpu_provider_is_unavailable_not_a_silent_cpu_run(variant: Variant) -> None:
    options = LoadOptions(device="gpu", providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(BackendUnavailable, match="offers none of CUDAExecutionProvider"):
        OnnxBackend().load(variant, options)
