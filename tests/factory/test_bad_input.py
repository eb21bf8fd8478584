"""Bad input to ``models build``: exit 2 with one line naming the file and what is
wrong, a failing step that does not end the build, Ctrl-C, and nothing half-written
left behind in any of these cases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import load_package
from runtime.catalog.golden import write_npz
from tests.support.factory_sources import Source, cli

BUILD = ("models", "build")


def _left_behind(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".staging"))


def _build(source: Path, golden: Path, out: Path, *extra: str | Path) -> tuple[int, str]:
    code, _, err = cli(*BUILD, source, "--app", "m", "--version", "1.0.0", "--golden", golden,
                       "--out", out, *extra)  # fmt: skip
    return code, err.strip()


def test_a_source_that_is_not_a_model(embedding_source: Source, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00 not a protobuf" * 20)
    out = tmp_path / "out"
    code, err = _build(junk, embedding_source.golden, out)
    assert code == 2 and err.startswith(f"error: {junk}: not a readable ONNX model")
    assert len(err.splitlines()) == 1
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"torch")
    code, err = _build(weights, embedding_source.golden, out)
    assert code == 2 and err == (
        f"error: {weights}: not an ONNX (.onnx) or GGUF (.gguf) model, nor a "
        "sentence-transformers directory"
    )
    code, err = _build(tmp_path / "missing.onnx", embedding_source.golden, out)
    assert code == 2 and err == f"error: {tmp_path / 'missing.onnx'}: file not found"
    assert not out.exists() and _left_behind(tmp_path) == []


def test_golden_names_and_shapes_must_match(embedding_source: Source, tmp_path: Path) -> None:
    out = tmp_path / "out"
    wrong_name = write_npz(tmp_path / "g1.npz", {"pixels": np.zeros((4, 16), np.float32)})
    code, err = _build(embedding_source.model, wrong_name, out)
    assert code == 2 and err == (
        f"error: {wrong_name}: golden set lacks input 'features' "
        "(the model's inputs: features; the file has: pixels)"
    )
    wrong_shape = write_npz(tmp_path / "g2.npz", {"features": np.zeros((4, 15), np.float32)})
    code, err = _build(embedding_source.model, wrong_shape, out)
    assert code == 2 and err == (
        f"error: {wrong_shape}: input 'features' has shape [4, 15], the model takes [?, 16]"
    )
    not_npz = tmp_path / "g3.npz"
    not_npz.write_text("rows")
    code, err = _build(embedding_source.model, not_npz, out)
    assert code == 2 and err.startswith(f"error: {not_npz}: not a readable .npz golden set")
    assert not out.exists() and _left_behind(tmp_path) == []


def test_calibration_of_the_wrong_dtype(embedding_source: Source, tmp_path: Path) -> None:
    calib = write_npz(tmp_path / "calib.npz", {"features": np.zeros((8, 16), np.float64)})
    out = tmp_path / "out"
    code, err = _build(embedding_source.model, embedding_source.golden, out, "--calibration", calib)
    assert code == 2 and err == f"error: {calib}: input 'features' is FP64, the model takes FP32"
    assert not out.exists() and _left_behind(tmp_path) == []


def test_an_unwritable_out(embedding_source: Source, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "pkg"  # a directory can't be made under a file, even as root
    code, err = _build(embedding_source.model, embedding_source.golden, out)
    assert code == 2 and err.startswith(f"error: {out}: cannot write the package there:")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    code, err = _build(embedding_source.model, embedding_source.golden, taken)
    assert code == 2 and err == f"error: {taken}: already exists; --out takes a new directory"
    assert (taken / "keep.txt").read_text() == "mine" and _left_behind(tmp_path) == []


def test_unknown_variant_name_is_refused(embedding_source: Source, tmp_path: Path) -> None:
    code, err = _build(embedding_source.model, embedding_source.golden, tmp_path / "o",
                       "--variants", "fp32,int3")  # fmt: skip
    assert code == 2 and err.startswith("error: --variants: unknown variant int3 for an ONNX")


@pytest.mark.slow
def test_a_failing_step_does_not_end_the_build(tmp_path: Path) -> None:
    """A model without MatMul: the dynamic quantizer has nothing to do, that variant
    fails with its reason, the others are built."""
    from onnx import TensorProto, helper, numpy_helper

    from tests.support.source_models import _save, images

    w = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(4, 1, 3, 3)).astype(np.float32), "w"
    )
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Softmax", ["f"], ["probs"], axis=-1),
    ]
    model = _save(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])],
        tmp_path / "convonly.onnx",
        [w],
    )
    golden = write_npz(tmp_path / "g.npz", {"image": images(32)})
    out = tmp_path / "out"
    code, err = _build(model, golden, out, "--variants", "fp32,int8-dynamic", "--json")
    assert code == 0, err
    assert {v.id for v in load_package(out).variants} == {"fp32"}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly(conv_source: Source, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", *BUILD, str(conv_source.model), "--app", "m",
         "--version", "1.0.0", "--golden", str(conv_source.golden), "--out", str(out), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _left_behind(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _left_behind(tmp_path), "the build staged its package"
    time.sleep(0.5)  # into the steps
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: nothing was written" in err
    assert not out.exists() and _left_behind(tmp_path) == []


def _tiny(path: Path, nodes: list, inputs: list, outputs: list, inits: list | None = None,
          opsets: list | None = None) -> Path:  # fmt: skip
    """A model written as given, without the checker (the file may be bad on purpose)."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits or [])
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _features_io(width: str | int = 16) -> tuple[list, list]:
    from onnx import TensorProto, helper

    return (
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", width])],
    )


def test_external_data_outside_the_model_folder(tmp_path: Path) -> None:
    """A weight file named by a path that leaves the model's folder is refused before
    anything reads it, naming the file."""
    import onnx
    from onnx import helper, numpy_helper

    ins, outs = _features_io()
    w = numpy_helper.from_array(np.ones(16, np.float32), "w")
    w.data_location = onnx.TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.external_data.add(key="location", value="../secret.bin")
    (tmp_path / "secret.bin").write_bytes(np.ones(16, np.float32).tobytes())
    (tmp_path / "m").mkdir()
    add = helper.make_node("Add", ["features", "w"], ["out"])
    model = _tiny(tmp_path / "m" / "ext.onnx", [add], ins, outs, [w])
    golden = write_npz(tmp_path / "g.npz", {"features": np.zeros((4, 16), np.float32)})
    out = tmp_path / "out"
    code, err = _build(model, golden, out)
    assert code == 2 and "'../secret.bin'" in err and "outside the model's directory" in err
    assert len(err.splitlines()) == 1 and not out.exists() and _left_behind(tmp_path) == []


def test_an_operator_onnxruntime_lacks(tmp_path: Path) -> None:
    from onnx import helper

    ins, outs = _features_io()
    node = helper.make_node(
        "Mystery", ["features"], ["out"], name="mystery_1", domain="com.example"
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = _tiny(tmp_path / "op.onnx", [node], ins, outs, opsets=opsets)
    golden = write_npz(tmp_path / "g.npz", {"features": np.zeros((4, 16), np.float32)})
    code, err = _build(model, golden, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {model}: onnxruntime cannot load it:")
    assert "Mystery" in err and len(err.splitlines()) == 1
    assert _left_behind(tmp_path) == []


def test_an_opset_no_runtime_knows(tmp_path: Path) -> None:
    from onnx import helper

    ins, outs = _features_io()
    model = _tiny(tmp_path / "future.onnx", [helper.make_node("Relu", ["features"], ["out"])],
                  ins, outs, opsets=[helper.make_opsetid("", 99)])  # fmt: skip
    golden = write_npz(tmp_path / "g.npz", {"features": np.zeros((4, 16), np.float32)})
    code, err = _build(model, golden, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {model}:") and "99" in err
    assert len(err.splitlines()) == 1 and _left_behind(tmp_path) == []


@pytest.mark.slow
def test_golden_rows_that_do_not_fit_a_dynamic_axis(tmp_path: Path) -> None:
    """The model declares its second axis dynamic, but an Add with a [16] weight needs it
    to be 16: rows 15 wide pass the declared shape and fail in the model, which the build
    says naming the golden file and the node."""
    from onnx import helper, numpy_helper

    ins, outs = _features_io("T")
    w = numpy_helper.from_array(np.ones(16, np.float32), "w")
    model = _tiny(tmp_path / "dyn.onnx",
                  [helper.make_node("Add", ["features", "w"], ["out"], name="bias_add")],
                  ins, outs, [w])  # fmt: skip
    golden = write_npz(tmp_path / "g.npz", {"features": np.zeros((4, 15), np.float32)})
    code, err = _build(model, golden, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {golden}: the source model cannot run")
    assert "bias_add" in err and len(err.splitlines()) == 1 and _left_behind(tmp_path) == []


def _workers(pid: int) -> list[int]:
    """The factory's child processes of ``pid`` (python -m runtime.factory.worker)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "runtime.factory.worker" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_stops_the_steps_child_processes(
    conv_source: Source, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C (or a service manager's SIGTERM) in the middle of a step that runs in a
    child process: the child goes too, and nothing is left behind."""
    import psutil

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", *BUILD, str(conv_source.model), "--app", "m",
         "--version", "1.0.0", "--golden", str(conv_source.golden), "--out", str(out),
         "--variants", "fp32,openvino-int8,openvino-fp16,int8-static", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    deadline = time.monotonic() + 120
    seen: list[int] = []
    while not seen and proc.poll() is None and time.monotonic() < deadline:
        seen = _workers(proc.pid)
        time.sleep(0.05)
    assert seen, "a step ran in a child process"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    alive = [p for p in seen if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == [], "the step's child process outlived the build"
    assert not out.exists() and _left_behind(tmp_path) == []
