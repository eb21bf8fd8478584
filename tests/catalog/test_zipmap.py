"""A scikit-learn classifier exported with its ZipMap (probabilities as a list of dicts)
is refused with what to do instead, by `models add` and by the onnx backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from runtime.backends.base import LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.catalog import Variant, VariantMeta
from runtime.cli import app
from runtime.errors import BackendLoadError


def _zipmap_classifier(path: Path) -> Path:
    """What skl2onnx writes for a 3-class linear classifier with default options."""
    coef = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    nodes = [
        helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                         classlabels_ints=[0, 1, 2], coefficients=coef.ravel().tolist(),
                         intercepts=[0.0, 0.0, 0.0], post_transform="SOFTMAX"),
        helper.make_node("ZipMap", ["scores"], ["output_probability"], domain="ai.onnx.ml",
                         classlabels_int64s=[0, 1, 2]),
    ]  # fmt: skip
    per_class = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    probability = helper.make_value_info(
        "output_probability",
        helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64, per_class)),
    )
    graph = helper.make_graph(
        nodes, "zipmap",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]), probability],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.save(model, path)
    return path


HINT = "options={'zipmap': False}"


def test_models_add_names_the_output_and_how_to_export_without_zipmap(tmp_path: Path) -> None:
    src = _zipmap_classifier(tmp_path / "classifier.onnx")
    result = CliRunner().invoke(app, ["models", "add", str(src), "--store", str(tmp_path / "s")])
    assert result.exit_code != 0
    assert str(src) in result.stderr and "'output_probability'" in result.stderr
    assert "sequence of maps" in result.stderr and HINT in result.stderr
    assert not (tmp_path / "s" / "classifier").exists()


def test_the_onnx_backend_refuses_it_with_the_same_advice(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    src = _zipmap_classifier(tmp_path / "v" / "model.onnx")
    meta = VariantMeta.model_validate({
        "variant": "v", "format": "onnx", "precision": "fp32", "entrypoint": "model.onnx",
        "bytes": src.stat().st_size, "peak_memory_bytes": 1 << 20, "device_classes": ["cpu"],
        "files": [{"path": "model.onnx", "sha256": "0" * 64, "size": src.stat().st_size}],
    })  # fmt: skip
    with pytest.raises(BackendLoadError, match="output_probability") as err:
        OnnxBackend().load(Variant(meta=meta, path=src.parent), LoadOptions())
    assert HINT in err.value.message
