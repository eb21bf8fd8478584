"""What a real exported ONNX model needs before any quantizer sees it, done once per build;
the result is the family's ``fp32`` variant and every other variant's source.

1. Read and check it (``BuildInputError`` naming the file and what is wrong: not ONNX, an
   opset or operator that onnxruntime cannot load; runtime.catalog.inspect has already
   refused external data files outside the model's folder or missing).
2. Weights held in ``Constant`` nodes lifted into initializers (quantizers look there),
   every node named (the float searches address nodes by name).
3. The opset raised to 13 when it is lower (onnx's version converter): per-channel QDQ
   needs ``DequantizeLinear``'s ``axis``, which opset 13 brought; an older graph
   quantized per channel does not load (issue 24: Paddle2ONNX's opset 12 detector). When
   the converter cannot raise it, the graph keeps its opset and int8 falls back to
   per-tensor scales (``Prepared.per_channel`` says which).
4. onnxruntime's quantization pre-processing: symbolic and ONNX shape inference and its
   basic graph optimisation (BatchNormalization folded into the Conv before it, constants
   folded), whose output is plain ONNX any runtime reads. It runs in a child process
   (runtime/factory/child.py): within the build's deadline, and in a working directory
   of its own, because onnxruntime's symbolic shape inference writes
   ``sym_shape_infer_temp.onnx`` and its external data into the working directory
   whenever it cannot infer every shape, and leaves them there.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.factory.checks import runtime_message
from runtime.factory.spec import BuildInputError

log = logging.getLogger(__name__)

PER_CHANNEL_OPSET = 13  # DequantizeLinear's axis attribute


@dataclass
class Prepared:
    path: Path
    opset: int
    per_channel: bool
    notes: list[str] = field(default_factory=list)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def default_opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def read_graph(path: Path) -> Any:
    """The ModelProto of ``path`` without its external data (nothing beside it is read);
    BuildInputError naming the file when it is not ONNX."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as e:
        raise BuildInputError(f"{path}: file not found") from e
    except Exception as e:
        raise BuildInputError(f"{path}: not a readable ONNX model: {_first_line(e)}") from e


def load_model(path: Path) -> Any:
    """The checked ModelProto of ``path``; BuildInputError naming the file otherwise.
    Call runtime.catalog.inspect.inspect_onnx first: it refuses external data files
    outside the model's folder before anything reads them."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        raise BuildInputError(f"{path}: not a readable ONNX model: {_first_line(e)}") from e
    if not model.graph.node:
        raise BuildInputError(f"{path}: not a readable ONNX model: the graph has no nodes")
    return model


def check_loads(path: Path) -> None:
    """BuildInputError when onnxruntime cannot load the source (an operator it lacks, an
    opset it does not know): the family has no baseline without it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BuildInputError(f"{path}: onnxruntime cannot load it: {runtime_message(e)}") from e


def _lift_constants(model: Any) -> int:
    """Move tensor-valued ``Constant`` nodes into initializers; returns how many moved."""
    from onnx import numpy_helper

    keep, lifted = [], 0
    for node in model.graph.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and "value" in attr and len(node.output) == 1:
            arr = numpy_helper.to_array(attr["value"].t)
            model.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            lifted += 1
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return lifted


def _name_nodes(model: Any) -> None:
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type.lower()}_{i}"
        seen.add(node.name)


def _raise_opset(model: Any, notes: list[str]) -> tuple[Any, bool]:
    """The model at opset >= 13 (and True), or as it was (and False) with a note why."""
    import onnx
    from onnx import version_converter

    opset = default_opset(model)
    if opset >= PER_CHANNEL_OPSET:
        return model, True
    try:
        raised = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        onnx.checker.check_model(raised)
    except Exception as e:
        notes.append(f"opset {opset} kept (the version converter failed: {_first_line(e)}); "
                     "int8 uses per-tensor scales")  # fmt: skip
        return model, False
    notes.append(f"opset raised from {opset} to {PER_CHANNEL_OPSET} for per-channel int8")
    return raised, True


PRE_PROCESS_S = 600.0  # the pre-processing's own limit when the caller gives no deadline


def prepare(src: Path, dst: Path, *, deadline: float | None = None) -> Prepared:
    """Write the prepared fp32 graph of ``src`` to ``dst``. A pre-processing step that
    fails, or that ``deadline`` (time.monotonic()) cuts, is a note, not an error; the
    source itself must load (BuildInputError)."""
    import onnx

    model = load_model(src)
    check_loads(src)
    notes: list[str] = []
    if lifted := _lift_constants(model):
        notes.append(f"{lifted} Constant nodes lifted into initializers")
    _name_nodes(model)
    model, per_channel = _raise_opset(model, notes)
    dst.parent.mkdir(parents=True, exist_ok=True)
    raw = dst.with_name(".raw-" + dst.name)
    onnx.save(model, str(raw))
    try:
        _pre_process_in_child(raw, dst, notes, deadline or time.monotonic() + PRE_PROCESS_S)
    finally:
        raw.unlink(missing_ok=True)
    model = onnx.load(str(dst), load_external_data=False)
    return Prepared(dst, default_opset(model), per_channel, notes)


def _pre_process_in_child(raw: Path, dst: Path, notes: list[str], deadline: float) -> None:
    from runtime.factory.child import JobCut, JobFailed, run_job

    with tempfile.TemporaryDirectory(prefix=".prepare-", dir=dst.parent) as work:
        try:
            out = run_job("prepare", {"raw": str(raw), "dst": str(dst)}, deadline=deadline,
                          work=Path(work))  # fmt: skip
            notes.extend(out.get("notes", []))
            return
        except JobCut as e:
            notes.append(f"shape inference and optimisation skipped: {e}")
        except JobFailed as e:
            notes.append(f"shape inference and optimisation skipped: {e}")
    shutil.copyfile(raw, dst)


def pre_process(raw: Path, dst: Path, notes: list[str]) -> None:
    """onnxruntime's quant_pre_process (symbolic shape inference where it works, ONNX's
    otherwise, then basic optimisation); the raw graph as it is when all of it fails. The
    ``prepare`` job of runtime/factory/worker.py runs it, in a child process and a
    working directory of its own."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        shutil.copyfile(raw, dst)
        return
    attempts: tuple[tuple[dict[str, bool], str], ...] = (
        ({}, ""),
        ({"skip_symbolic_shape": True}, "symbolic shape inference skipped"),
        ({"skip_symbolic_shape": True, "skip_optimization": True}, "optimisation skipped"),
    )
    for kwargs, note in attempts:
        try:
            with _quiet():
                quant_pre_process(str(raw), str(dst), **kwargs)
        except Exception as e:
            log.info("quant_pre_process(%s) failed: %s", kwargs, _first_line(e))
            continue
        if note:
            notes.append(note)
        _name_nodes_in_file(dst)
        return
    notes.append("shape inference and optimisation skipped: onnxruntime's pre-processing failed")
    shutil.copyfile(raw, dst)


def _name_nodes_in_file(path: Path) -> None:
    """The optimiser adds nodes (folded BatchNormalization) that may have no name."""
    import onnx

    model = onnx.load(str(path))
    if all(n.name for n in model.graph.node) and len({n.name for n in model.graph.node}) == len(
        model.graph.node
    ):
        return
    _name_nodes(model)
    onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet() -> Any:
    """quant_pre_process logs its own advice at WARNING for every model: not ours to show."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
