"""Every written variant is checked before it is measured (runtime/factory/checks.py): a
graph the runtime cannot load is a step's reason, never a package file. The case from
issue 24: per-channel QDQ written into an opset-12 graph, which onnxruntime refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.catalog.golden import write_npz
from runtime.factory.checks import BrokenVariant, check_onnx, int8_share, weight_bytes
from runtime.factory.child import run_job
from runtime.factory.onnx_variants import make_int8_static, make_int8_weights
from tests.support.source_models import conv_classifier, images

pytestmark = pytest.mark.slow


def _opset_12(path: Path) -> Path:
    """The conv classifier prepared (weights lifted into initializers, where the
    quantizer writes per-channel scales for them), then stamped opset 12 again."""
    import onnx

    from runtime.factory.onnx_prepare import prepare

    prepare(path, path)
    model = onnx.load(str(path))
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 12
    onnx.save(model, str(path))
    return path


def test_per_channel_int8_at_opset_12_is_refused_naming_the_node(tmp_path: Path) -> None:
    src = _opset_12(conv_classifier(tmp_path / "conv12.onnx"))
    dst = make_int8_static(src, tmp_path / "q.onnx", {"image": images(16)}, scheme="u8s8")
    with pytest.raises(BrokenVariant) as e:
        check_onnx(dst)
    reason = str(e.value)
    assert "\n" not in reason and "axis for operator DequantizeLinear" in reason
    assert "(node " in reason and "_DequantizeLinear)" in reason


def test_the_int8_step_falls_back_to_per_tensor_scales(tmp_path: Path) -> None:
    """When the opset could not be raised, the step's per-channel graph is broken; the
    step says so and writes a per-tensor graph that loads."""
    src = _opset_12(conv_classifier(tmp_path / "conv12.onnx"))
    golden = write_npz(
        tmp_path / "g.npz", {"image": images(16), "ref_top1": np.zeros(16, np.int64)}
    )
    out = tmp_path / "v"
    out.mkdir()
    specs = [{"name": "image", "datatype": "FP32", "shape": [-1, 1, -1, -1]}]
    result = run_job(
        "int8-static",
        {"src": str(src), "dst": str(out / "model.onnx"), "golden": str(golden),
         "calibration": str(golden), "specs": specs, "output": "probs", "metric": "agreement",
         "reference": "", "scheme": "u8s8", "per_channel": True, "target_bp": 0,
         "search": False},
        deadline=__import__("time").monotonic() + 120, work=tmp_path,
    )  # fmt: skip
    assert result["per_channel"] is False
    assert (
        "per-tensor scales used" in result["notes"][0] and "DequantizeLinear" in result["notes"][0]
    )
    check_onnx(out / "model.onnx")
    assert int8_share("onnx", out / "model.onnx") > 0.5


def test_int8_weights_reach_into_subgraphs(tmp_path: Path) -> None:
    """Weights inside an If's branches are stored as int8 too, and the graph still runs."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def branch(name: str, scale: float) -> object:
        w = numpy_helper.from_array((rng.normal(0, 1, (16, 8)) * scale).astype(np.float32))
        const = helper.make_node("Constant", [], [f"{name}_w"], value=w)
        mm = helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, ["N", 8])
        return helper.make_graph([const, mm], name, [], [out])

    cond = helper.make_tensor_value_info("fast", TensorProto.BOOL, [])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])
    node = helper.make_node("If", ["fast"], ["y"], then_branch=branch("a", 1.0),
                            else_branch=branch("b", 0.5))  # fmt: skip
    model = helper.make_model(helper.make_graph([node], "g", [cond, x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    model.ir_version = 8
    src = tmp_path / "if.onnx"
    onnx.save(model, str(src))
    dst = make_int8_weights(src, tmp_path / "w8.onnx")
    check_onnx(dst)
    assert weight_bytes("onnx", src) == {"fp32": 2 * 16 * 8 * 4}
    w8 = weight_bytes("onnx", dst)  # the int8 weights, their per-channel scales and zero points
    assert w8["int8"] >= 2 * 16 * 8 and w8["fp32"] == 2 * 8 * 4
    feed = {"fast": np.array(True), "x": rng.normal(0, 1, (4, 16)).astype(np.float32)}
    want = ort.InferenceSession(str(src)).run(None, feed)[0]
    got = ort.InferenceSession(str(dst)).run(None, feed)[0]
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)
