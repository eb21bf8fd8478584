"""The OpenVINO backend on real IR and ONNX files; it must agree with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from runtime.backends.base import LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.backends.openvino import OpenVinoBackend
from runtime.catalog import Variant, VariantMeta
from runtime.errors import BackendLoadError, BackendUnavailable
from tests.support.onnx_models import VariantSpec, write_package


@pytest.fixture
def onnx_variant(tmp_path: Path) -> Variant:
    return write_package(tmp_path / "store", [VariantSpec("m", hidden=24, seed=5)]).variants[0]


@pytest.fixture
def ir_variant(onnx_variant: Variant, tmp_path: Path) -> Variant:
    """The same network converted to OpenVINO IR with fp16 weights."""
    vdir = tmp_path / "ir"
    ov.save_model(
        ov.convert_model(str(onnx_variant.entrypoint)),
        str(vdir / "model.xml"),
        compress_to_fp16=True,
    )
    meta = onnx_variant.meta.model_dump()
    meta.update(format="openvino", precision="fp16", entrypoint="model.xml")
    return Variant(VariantMeta.model_validate(meta), vdir)


def _batch() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 16, (200, 64)).astype(np.float32)


def test_ir_gives_the_same_labels_as_onnxruntime(
    onnx_variant: Variant, ir_variant: Variant
) -> None:
    ort_backend = OnnxBackend()
    ort_backend.load(onnx_variant, LoadOptions())
    ov_backend = OpenVinoBackend()
    ov_backend.load(ir_variant, LoadOptions(device="cpu"))
    x = _batch()
    ort_probs = ort_backend.infer({"pixels": x})["probabilities"]
    ov_probs = ov_backend.infer({"pixels": x})["probabilities"]
    assert ov_probs.dtype == np.float32 and ov_probs.shape == (200, 10)
    np.testing.assert_array_equal(ov_probs.argmax(1), ort_probs.argmax(1))
    np.testing.assert_allclose(ov_probs, ort_probs, atol=0.02)  # fp16 weights


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_an_fp32_variant_computes_in_fp32(onnx_variant: Variant, device: str) -> None:
    """The numbers onnxruntime gives, to float32 rounding: OpenVINO's CPU plugin would
    compute in bf16 on a CPU with AVX512_BF16 or AMX (this check can only fail there) and
    move the probabilities by about 1e-2."""
    ort_backend = OnnxBackend()
    ort_backend.load(onnx_variant, LoadOptions())
    ov_backend = OpenVinoBackend()
    ov_backend.load(onnx_variant, LoadOptions(device=device))
    x = _batch()
    want = ort_backend.infer({"pixels": x})["probabilities"]
    got = ov_backend.infer({"pixels": x})["probabilities"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_openvino_reads_onnx_directly(onnx_variant: Variant) -> None:
    backend = OpenVinoBackend()
    backend.load(onnx_variant, LoadOptions(device="auto"))
    out = backend.infer({"pixels": np.zeros((3, 64), np.float32)})
    assert out["probabilities"].shape == (3, 10)
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, rtol=1e-5)


def test_describe_keeps_names_kserve_types_and_the_dynamic_batch(ir_variant: Variant) -> None:
    backend = OpenVinoBackend()
    backend.load(ir_variant, LoadOptions())
    schema = backend.describe()
    assert [(s.name, s.datatype, s.shape) for s in schema.inputs] == [("pixels", "FP32", (-1, 64))]
    assert [(s.name, s.datatype, s.shape) for s in schema.outputs] == [
        ("probabilities", "FP32", (-1, 10))
    ]
    assert backend.info().detail["ov_device"] == "CPU"


def test_compiled_blob_is_written_to_the_cache_dir(ir_variant: Variant, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OpenVinoBackend().load(ir_variant, LoadOptions(cache_dir=str(cache)))
    assert any((cache / "openvino").iterdir())
    again = OpenVinoBackend()
    again.load(ir_variant, LoadOptions(cache_dir=str(cache), performance_hint="THROUGHPUT"))
    assert again.infer({"pixels": np.ones((1, 64), np.float32)})["probabilities"].shape == (1, 10)


def test_a_device_the_box_lacks_is_unavailable_with_what_it_has(ir_variant: Variant) -> None:
    with pytest.raises(BackendUnavailable, match=r"OpenVINO has no NPU device here \(it has CPU"):
        OpenVinoBackend().load(ir_variant, LoadOptions(device="npu"))


def test_a_damaged_ir_fails_with_a_readable_message(ir_variant: Variant) -> None:
    ir_variant.entrypoint.write_text("<net>garbage")
    with pytest.raises(
        BackendLoadError, match=r"model\.xml: OpenVINO cannot read it: Unable to read"
    ):
        OpenVinoBackend().load(ir_variant, LoadOptions())


def test_a_failure_reason_keeps_every_line_openvino_gave(ir_variant: Variant) -> None:
    """Truncated weights: OpenVINO says where it checked, then, on a later line, what is
    wrong. The fallback reason an operator reads carries all of it but the source paths."""
    weights = ir_variant.entrypoint.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:5])
    core = ov.Core()
    with pytest.raises(Exception) as raw:
        core.compile_model(core.read_model(str(ir_variant.entrypoint)), "CPU")
    said = [ln.strip() for ln in str(raw.value).splitlines() if ln.strip()]
    causes = [ln for ln in said if not ln.startswith(("Exception from ", "Check '"))]
    assert causes, f"OpenVINO gave no cause beyond source locations: {said}"
    with pytest.raises(BackendLoadError) as ours:
        OpenVinoBackend().load(ir_variant, LoadOptions())
    for cause in causes:
        assert cause in ours.value.message
    assert "src/" not in ours.value.message.split("OpenVINO cannot", 1)[1]
