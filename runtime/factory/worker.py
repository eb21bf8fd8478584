"""The child side of runtime/factory/child.py: ``python -m runtime.factory.worker JOB.json``
runs one job and writes ``{"value": {...}}`` or ``{"error": "one line"}`` to the job's
result file.

Jobs write into their own job directory and move finished files into place with a rename,
so a job killed at the deadline leaves either the last finished file (which its
checkpoint names) or nothing in the variant's directory. Every written file is checked
(runtime/factory/checks.py) before it is scored or handed back.

Jobs: ``prepare`` (onnxruntime's pre-processing of the source), ``measure`` (a variant's
outputs on the golden rows, latency, peak memory), ``fp16``, ``int8-dynamic``,
``int8-static``, ``int8-weights``, ``openvino-fp16``, ``openvino-int8``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog import TensorSpec
from runtime.catalog.golden import RowLayout, load_arrays
from runtime.catalog.quality import score_bp
from runtime.factory import checks, onnx_prepare, onnx_variants, openvino_variants
from runtime.factory.child import write_json_atomic
from runtime.factory.exclusion import FloatSearch, Trial, keep_in_float, relative_error
from runtime.factory.measure import measure_tensor_variant

log = logging.getLogger("runtime.factory.worker")
PR_SET_PDEATHSIG = 1


@dataclass
class Job:
    args: dict[str, Any]
    scratch: Path  # the job's own directory
    deadline: float
    checkpoint: Callable[[dict[str, Any]], None]


class Golden:
    """The golden rows a job scores on: inputs, the metric's references, the source's
    first output (for the relative error), the model's input specs."""

    def __init__(self, a: dict[str, Any]) -> None:
        arrays = load_arrays(Path(a["golden"]))
        self.specs = tuple(TensorSpec.model_validate(s) for s in a["specs"])
        names = [s.name for s in self.specs]
        self.inputs = {k: arrays[k] for k in names}
        self.refs = {k: v for k, v in arrays.items() if k not in self.inputs}
        self.metric: str = a.get("metric", "")
        self.output: str | None = a.get("output")
        self.reference = np.load(a["reference"]) if a.get("reference") else None
        self.layout = RowLayout.of(self.specs, self.inputs)

    def quality(self, outputs: np.ndarray, rows: Any = None) -> int:
        refs = self.refs
        if rows is not None:
            refs = {k: (v[rows] if np.ndim(v) > 0 else v) for k, v in self.refs.items()}
        return score_bp(self.metric, outputs, refs)

    def outputs(self, fmt: str, path: Path, threads: tuple[int, int] = (0, 1)) -> np.ndarray:
        return measure_tensor_variant(
            fmt, path.parent, path.name, self.inputs, output=self.output, latency_samples=0,
            specs=self.specs, threads=threads,
        ).first_output  # fmt: skip

    def trial(self, fmt: str, path: Path) -> Trial:
        """Check ``path`` and score it; a broken trial scores below anything that loads."""
        try:
            checks.check_written(fmt, path)
        except checks.BrokenVariant as e:
            log.info("trial %s: %s", path.name, e)
            return Trial(-1, float("inf"), str(path))
        out = self.outputs(fmt, path)
        err = relative_error(out, self.reference) if self.reference is not None else 0.0
        return Trial(self.quality(out), err, str(path))


def _place(files: Sequence[Path], dst_dir: Path) -> None:
    """Move finished files into the variant's directory (the last one is the entrypoint,
    so it appears only once everything it needs is there)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.replace(f, dst_dir / f.name)


def _search(
    job: Job,
    golden: Golden,
    candidates: Sequence[str],
    first: Trial,
    make: Callable[[Path, Sequence[str]], None],
    dst: Path,
    *,
    what: str,
    groups: int,
) -> FloatSearch:
    """keep_in_float over ``candidates``: trials in the job's directory, each better one
    moved to ``dst`` and recorded as the job's checkpoint."""
    count = iter(range(1 << 30))

    def evaluate(kept: Sequence[str]) -> Trial:
        path = job.scratch / f"trial-{next(count)}.onnx"
        make(path, kept)
        return golden.trial("onnx", path)

    def better(kept: Sequence[str], t: Trial) -> None:
        os.replace(t.artifact, dst)
        job.checkpoint({"kept_float": list(kept), "quality_bp": t.quality_bp, "error": t.error})

    return keep_in_float(
        candidates, evaluate, first, what=what, target_bp=int(job.args["target_bp"]),
        deadline=job.deadline, on_better=better,
        discard=lambda t: Path(t.artifact).unlink(missing_ok=True), groups=groups,
    )  # fmt: skip


def job_prepare(job: Job) -> dict[str, Any]:
    notes: list[str] = []
    onnx_prepare.pre_process(Path(job.args["raw"]), Path(job.args["dst"]), notes)
    return {"notes": notes}


def job_measure(job: Job) -> dict[str, Any]:
    a = job.args
    if a["fmt"] == "openvino":
        import openvino  # noqa: F401  (imported before the memory baseline)
    else:
        import onnxruntime  # noqa: F401
    golden = Golden(a)
    m = measure_tensor_variant(
        a["fmt"], Path(a["dir"]), a["entry"], golden.inputs, output=golden.output,
        latency_samples=int(a["samples"]), specs=golden.specs,
        threads=(int(a["threads"][0]), int(a["threads"][1])), deadline=job.deadline,
    )  # fmt: skip
    np.save(a["outputs_file"], m.first_output)
    return {
        "latency_us": m.latency_us,
        "latency_samples": m.latency_samples,
        "peak_memory_bytes": m.peak_memory_bytes,
    }


def job_fp16(job: Job) -> dict[str, Any]:
    a = job.args
    src, dst = Path(a["src"]), Path(a["dst"])
    golden = Golden(a)
    first_path = job.scratch / dst.name
    onnx_variants.make_fp16(src, first_path)
    checks.check_onnx(first_path)
    first = golden.trial("onnx", first_path)
    _place([first_path], dst.parent)
    job.checkpoint({"kept_float": [], "quality_bp": first.quality_bp, "error": first.error})
    if first.quality_bp >= int(a["target_bp"]) or not a.get("search"):
        return {"keep_float": [], "search": None}
    candidates = onnx_variants.float_op_types(src)

    def make(path: Path, kept: Sequence[str]) -> None:
        onnx_variants.make_fp16(src, path, keep_float=kept)

    search = _search(job, golden, candidates, first, make, dst, what="operator types",
                     groups=len(candidates))  # fmt: skip
    return {"keep_float": search.kept_float, "search": search.to_dict()}


def _unreachable(src: Path, ops: Sequence[str], what: str) -> str:
    """Why a quantizer of the main graph found nothing: the ops it wants, in subgraphs."""
    inside = onnx_variants.subgraph_ops(src, ops)
    where = ", ".join(f"{n} in the branches of {holder}" for holder, n in inside.items())
    return f"{what}: no {'/'.join(ops)} node in the main graph" + (
        f" ({where}, which onnxruntime's quantizer does not enter)" if where else ""
    )


def job_int8_dynamic(job: Job) -> dict[str, Any]:
    a = job.args
    src, dst = Path(a["src"]), Path(a["dst"])
    path = job.scratch / dst.name
    try:
        onnx_variants.make_int8_dynamic(src, path, a["scheme"])
    except onnx_variants.NothingToQuantize as e:
        raise onnx_variants.NothingToQuantize(
            _unreachable(src, onnx_variants.DYNAMIC_OPS, str(e))
        ) from e
    checks.check_onnx(path)
    _place([path], dst.parent)
    return {}


def job_int8_weights(job: Job) -> dict[str, Any]:
    a = job.args
    dst = Path(a["dst"])
    path = job.scratch / dst.name
    onnx_variants.make_int8_weights(Path(a["src"]), path)
    checks.check_onnx(path)
    _place([path], dst.parent)
    return {}


def job_int8_static(job: Job) -> dict[str, Any]:
    a = job.args
    src, dst = Path(a["src"]), Path(a["dst"])
    golden = Golden(a)
    calib = load_arrays(Path(a["calibration"]))
    calib = {s.name: calib[s.name] for s in golden.specs}
    layout = RowLayout.of(golden.specs, calib)
    per_channel = bool(a["per_channel"])
    notes: list[str] = []
    if not onnx_variants.quantizable_nodes(src):
        raise onnx_variants.NothingToQuantize(
            _unreachable(src, onnx_variants.QUANTIZED_OPS, "nothing to quantize")
        )

    ranges = job.scratch / "calibration-ranges.json"  # calibrated once, reused by each trial

    def make(path: Path, kept: Sequence[str]) -> None:
        onnx_variants.make_int8_static(
            src, path, calib, scheme=a["scheme"], exclude=kept, per_channel=per_channel,
            layout=layout, calibration_cache=ranges,
        )  # fmt: skip

    first_path = job.scratch / dst.name
    make(first_path, [])
    try:
        checks.check_onnx(first_path)
    except checks.BrokenVariant as e:
        if not per_channel:
            raise
        notes.append(f"per-channel scales gave a broken graph ({e}); per-tensor scales used")
        per_channel = False
        make(first_path, [])
        checks.check_onnx(first_path)
    first = golden.trial("onnx", first_path)
    _place([first_path], dst.parent)
    job.checkpoint({"kept_float": [], "quality_bp": first.quality_bp, "error": first.error})
    result: dict[str, Any] = {"per_channel": per_channel, "notes": notes, "search": None}
    if first.quality_bp < int(a["target_bp"]) and a.get("search"):
        search = _search(job, golden, onnx_variants.quantizable_nodes(src), first,
                         make, dst, what="nodes", groups=8)  # fmt: skip
        result["search"] = search.to_dict()
    return result


def job_openvino_fp16(job: Job) -> dict[str, Any]:
    a = job.args
    xml = job.scratch / "model.xml"
    openvino_variants.make_ir_fp16(Path(a["src"]), xml)
    checks.check_ir(xml)
    _place([xml.with_suffix(".bin"), xml], Path(a["dst"]).parent)
    return {}


def job_openvino_int8(job: Job) -> dict[str, Any]:
    a = job.args
    golden = Golden(a)
    xml = job.scratch / "model.xml"
    openvino_variants.make_ir_int8(
        Path(a["src"]), xml, golden.inputs, quality=golden.quality,
        max_drop_bp=int(a["max_drop_bp"]), mode=a["mode"], layout=golden.layout,
        output=golden.output,
    )  # fmt: skip
    checks.check_ir(xml)
    share = checks.int8_share("openvino", xml)
    _place([xml.with_suffix(".bin"), xml], Path(a["dst"]).parent)
    return {"int8_share": round(share, 4)}


JOBS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "prepare": job_prepare,
    "measure": job_measure,
    "fp16": job_fp16,
    "int8-dynamic": job_int8_dynamic,
    "int8-static": job_int8_static,
    "int8-weights": job_int8_weights,
    "openvino-fp16": job_openvino_fp16,
    "openvino-int8": job_openvino_int8,
}


def _die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the build dies (Linux); elsewhere the build's own
    cleanup is all there is."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _reason(e: BaseException) -> str:
    """One line: the exception's first, or, for OpenVINO's frontend (whose first line is
    a source location), the operators it could not convert."""
    text = str(e).strip().splitlines()
    failed = next((ln for ln in text if "Conversion is failed for:" in ln), None)
    if failed:
        ops = failed.split("Conversion is failed for:", 1)[1].strip()
        return f"OpenVINO cannot convert {ops}"
    return f"{type(e).__name__}: {text[0][:400] if text else ''}".rstrip(": ")


def main(argv: list[str]) -> int:
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    spec = json.loads(Path(argv[1]).read_text())
    if os.getppid() == 1:  # the build died before PR_SET_PDEATHSIG took hold
        return 1
    job = Job(
        spec["args"],
        Path(argv[1]).parent,
        float(spec["deadline"]),
        lambda value: write_json_atomic(Path(spec["checkpoint"]), value),
    )
    t0 = time.monotonic()
    try:
        value = JOBS[spec["job"]](job)
    except (checks.BrokenVariant, onnx_variants.NothingToQuantize) as e:
        out: dict[str, Any] = {"error": str(e)}  # already one line that names the cause
    except ImportError as e:
        out = {"error": f"{e.name or 'a library'} is not installed: {e}"}
    except Exception as e:
        log.exception("job %s failed", spec["job"])
        out = {"error": _reason(e)}
    else:
        out = {"value": value, "seconds": round(time.monotonic() - t0, 3)}
    write_json_atomic(Path(spec["result"]), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
