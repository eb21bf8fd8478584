"""``models add`` of an ONNX file that no runtime here can load (a custom operator domain)
is refused at import, naming each runtime's reason, instead of failing at serve time
(issue 25, item 21). A model the runtimes can load is imported as before."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper
from typer.testing import CliRunner

from runtime.catalog import Store


def _custom_op_model(path: Path) -> Path:
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example.custom")
    graph = helper.make_graph(
        [node],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example.custom", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    onnx.checker.check_model(str(path))  # valid ONNX: only a runtime can tell
    return path


def _add(path: Path, store: Path) -> tuple[int, str]:
    from runtime.cli import app

    result = CliRunner().invoke(app, ["models", "add", str(path), "--store", str(store)])
    return result.exit_code, result.output


def test_a_model_no_runtime_can_load_is_refused_at_import(tmp_path: Path) -> None:
    model = _custom_op_model(tmp_path / "custom.onnx")
    code, out = _add(model, tmp_path / "store")
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert str(model) in lines[0] and "no runtime here can load it" in lines[0]
    assert "onnx: " in lines[0] and "Frobnicate" in lines[0]
    assert Store(tmp_path / "store").applications() == []


def test_a_model_a_runtime_loads_is_imported(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    code, out = _add(model, tmp_path / "store")
    assert code == 0, out
    assert Store(tmp_path / "store").applications() == ["plain"]
