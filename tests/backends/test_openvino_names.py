"""The OpenVINO backend names tensors as the model declares them: an fp16 ONNX with its
io kept fp32 has a Cast behind its input whose name OpenVINO merges into the input's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.base import LoadOptions
from runtime.backends.openvino import OpenVinoBackend
from runtime.catalog import FileEntry, Variant, VariantMeta
from runtime.factory.onnx_variants import make_fp16, prepare
from tests.support.prereq import need_module
from tests.support.source_models import embedding_head, run_onnx

need_module("openvino")


def test_fp16_onnx_with_io_kept_serves_under_its_declared_names(tmp_path: Path) -> None:
    # "pixels" sorts after "graph_input_cast_0": any_name used to return the cast's name
    src = embedding_head(tmp_path / "src.onnx", input_name="pixels", output_name="scores")
    prepare(src, tmp_path / "prep.onnx")
    vdir = tmp_path / "v"
    vdir.mkdir()
    make_fp16(tmp_path / "prep.onnx", vdir / "model.onnx")
    meta = VariantMeta(
        variant="fp16", format="openvino", precision="fp16", entrypoint="model.onnx",
        files=(FileEntry(path="model.onnx", sha256="0" * 64, size=1),), bytes=1,
        peak_memory_bytes=1,
    )  # fmt: skip
    backend = OpenVinoBackend()
    backend.load(Variant(meta, vdir), LoadOptions(device="cpu"))
    schema = backend.describe()
    assert [s.name for s in schema.inputs] == ["pixels"]
    assert [s.name for s in schema.outputs] == ["scores"]
    assert schema.inputs[0].datatype == "FP32"
    x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    out = backend.infer({"pixels": x})
    np.testing.assert_allclose(out["scores"], run_onnx(src, {"pixels": x}), rtol=0.05, atol=0.02)
    backend.unload()
