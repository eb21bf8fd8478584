"""Each rung of the ONNX family, as the build runs it: the conversion in a child process
stopped at the deadline (runtime/factory/child.py, worker.py), then the measurement in
another, then the rung named by what was written.

Two passes share the time budget:

1. ``make``: every rung, plainly (fp16 of every node, int8 of every Conv/MatMul/Gemm,
   NNCF's quick PTQ), measured. Each conversion gets the deadline less a reserve for
   measuring what it wrote (``measure_reserve_s``: the fp32 measurement's time and a
   margin), so a slow conversion is cut before it can starve its own measurement.
2. ``refine``: the rungs whose quality falls more than ``--max-drop-bp`` below the source
   search for what to keep in float (runtime/factory/exclusion.py; NNCF's accuracy
   control for the OpenVINO int8 rung), each with an equal share of what is left, in a
   child stopped at its share's end. A search that is cut keeps its best copy so far; a
   result replaces the rung only when it measures better. NNCF's accuracy control is not
   started with less than ``AC_MIN_S`` to run.

Names: a rung's precision is the storage type of most of its weight bytes, read from the
file (runtime/factory/checks.py). An int8 kind with no int8 weights at all fails ("not
an int8 rung"); one whose int8 weights are not the majority is renamed
``<kind>-partial`` and carries the precision it has (issue 24: an ``openvino-int8`` that
NNCF had kept entirely in float, the size of fp32).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog import TensorSpec
from runtime.factory import checks
from runtime.factory.child import JobCut, run_job
from runtime.factory.context import BuildContext, StepFailed
from runtime.factory.results import VariantResult

MODEL = "model.onnx"
IR = "model.xml"
AC_MIN_S = 30.0  # NNCF's accuracy control is not started with less than this to run
SEARCH_MIN_S = 5.0  # nor is a search
INT8_KINDS = ("int8-dynamic", "int8-static", "int8-weights", "openvino-int8")
REFINABLE = ("fp16", "int8-static", "openvino-int8")  # in the order pass 2 runs them


@dataclass
class Shared:
    """The files and facts every rung of one build reads (written once by the family)."""

    prepared: Path
    per_channel: bool
    golden: Path  # inputs + the metric's references (golden.npz's arrays)
    calibration: Path
    reference: Path  # the source's first output over the golden rows (.npy)
    specs: tuple[TensorSpec, ...]
    output: str | None
    metric: str
    reference_bp: int
    threads: tuple[int, int]

    def scoring_args(self) -> dict[str, Any]:
        return {
            "golden": str(self.golden),
            "specs": [s.model_dump() for s in self.specs],
            "output": self.output,
            "metric": self.metric,
            "reference": str(self.reference),
        }


def _entry(fmt: str) -> str:
    return IR if fmt == "openvino" else MODEL


class Rungs:
    """``make(kind, vr, vdir)`` and ``refine(vr, vdir, deadline)``: the step functions
    the build context runs."""

    def __init__(
        self, ctx: BuildContext, shared: Shared, quality: Any, *, baseline_deadline: float
    ) -> None:
        self.ctx = ctx
        self.s = shared
        self.quality = quality  # first output over every golden row -> bp
        self.measure_reserve_s = 5.0
        self.baseline_deadline = baseline_deadline  # fp32's measurement: see onnx_build

    def target_bp(self) -> int:
        return self.s.reference_bp - self.ctx.opts.max_drop_bp

    # --- measuring and naming ----------------------------------------------------------

    def measure(self, vr: VariantResult, vdir: Path, entry: str) -> None:
        """Outputs, latency and peak memory in a child; quality scored here."""
        outputs = self.ctx.work / f"outputs-{vr.kind}-{time.monotonic_ns()}.npy"
        args = {
            **self.s.scoring_args(), "fmt": vr.format, "dir": str(vdir), "entry": entry,
            "samples": self.ctx.opts.latency_samples, "threads": list(self.s.threads),
            "outputs_file": str(outputs),
        }  # fmt: skip
        deadline = self.baseline_deadline if vr.kind == "fp32" else self.ctx.deadline
        try:
            m = run_job("measure", args, deadline=deadline, work=self.ctx.work)
        except JobCut as e:
            raise StepFailed(
                f"cut at the time budget after {e.seconds:.0f} s, while measuring"
            ) from e
        first = np.load(outputs)
        outputs.unlink(missing_ok=True)
        vr.entrypoint = entry
        vr.accuracy_bp = int(self.quality(first))
        vr.latency_us = int(m["latency_us"]) or None
        vr.details["latency_samples"] = m["latency_samples"]
        vr.details["threads"] = list(self.s.threads)
        vr.measured_peak_bytes = int(m["peak_memory_bytes"] or 0) or None
        self._name(vr, vdir / entry)

    def _name(self, vr: VariantResult, path: Path) -> None:
        weights = checks.weight_bytes(vr.format, path)
        total = sum(weights.values())
        vr.details["weight_bytes"] = weights
        if total:
            vr.precision = max(weights, key=lambda p: weights[p])
        if vr.kind not in INT8_KINDS:
            return
        share = weights.get("int8", 0) / total if total else 0.0
        vr.details["int8_share"] = round(share, 4)
        if share == 0:
            raise StepFailed("no weight was written as int8 (every quantized layer was kept "
                             "in float): not an int8 rung")  # fmt: skip
        vr.variant = vr.kind if vr.precision == "int8" else f"{vr.kind}-partial"

    # --- pass 1: every rung, plainly ----------------------------------------------------

    def make(self, kind: str, vr: VariantResult, vdir: Path) -> None:
        if kind == "fp32":
            shutil.copyfile(self.s.prepared, vdir / MODEL)
        else:
            out = self._job(kind, vr, self._args(kind, vdir, search=False))
            for note in out.get("notes", []):
                self.ctx.result.notes.append(f"{kind}: {note}")
            if kind in ("int8-dynamic", "int8-static"):
                vr.details["scheme"] = self.ctx.opts.int8_scheme
            if "per_channel" in out:
                vr.details["per_channel"] = out["per_channel"]
            if kind == "openvino-int8":
                vr.details["nncf"] = {"mode": "ptq"}
        self.measure(vr, vdir, _entry(vr.format))

    def _args(self, kind: str, vdir: Path, *, search: bool) -> dict[str, Any]:
        opts = self.ctx.opts
        args: dict[str, Any] = {"src": str(self.s.prepared), "dst": str(vdir / _entry(
            "openvino" if kind.startswith("openvino") else "onnx"))}  # fmt: skip
        if kind in ("fp16", "int8-static", "openvino-int8"):
            args.update(self.s.scoring_args(), target_bp=self.target_bp(), search=search)
        if kind in ("int8-dynamic", "int8-static"):
            args["scheme"] = opts.int8_scheme
        if kind == "int8-static":
            args.update(calibration=str(self.s.calibration), per_channel=self.s.per_channel)
        if kind == "openvino-int8":
            args.update(max_drop_bp=opts.max_drop_bp,
                        mode="accuracy-control" if search else "ptq")  # fmt: skip
        return args

    def _job(self, kind: str, vr: VariantResult, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return run_job(kind, args, deadline=self.ctx.deadline - self.measure_reserve_s,
                           work=self.ctx.work)  # fmt: skip
        except JobCut as e:
            raise StepFailed(f"cut at the time budget after {e.seconds:.0f} s") from e

    # --- pass 2: searches for what to keep in float ------------------------------------

    def refinable(self, vr: VariantResult) -> bool:
        return vr.ok and vr.kind in REFINABLE and (vr.accuracy_bp or 0) < self.target_bp()

    def refine(self, vr: VariantResult, vdir: Path, deadline: float) -> None:
        """Search until ``deadline``; the rung takes the result when it measures better."""
        key = "nncf" if vr.kind == "openvino-int8" else f"{vr.kind.split('-')[0]}_search"
        log = vr.details.setdefault(key, {}) if key == "nncf" else {}
        left = deadline - time.monotonic()
        least = AC_MIN_S if vr.kind == "openvino-int8" else SEARCH_MIN_S
        if left < least:
            self._note(
                vr, key, log, f"skipped: {max(0.0, left):.0f} s left, it needs {least:.0f} s"
            )
            return
        scratch = self.ctx.work / f"refine-{vr.kind}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        t0 = time.monotonic()
        try:
            out = run_job(vr.kind, self._args(vr.kind, scratch, search=True),
                          deadline=deadline, work=self.ctx.work)  # fmt: skip
            search = out.get("search")
        except JobCut as e:
            what = f"cut at its share of the time budget after {e.seconds:.0f} s"
            if not e.checkpoint or not e.checkpoint.get("kept_float"):
                self._note(vr, key, log, f"{what}, before it found a better copy")
                return
            search = {**e.checkpoint, "stopped": what}
            self._note(vr, key, log, f"{what}; its best copy so far is measured")
        if key != "nncf":
            vr.details[key] = search
        self._take_if_better(vr, vdir, scratch, log, t0)

    def _take_if_better(
        self, vr: VariantResult, vdir: Path, scratch: Path, log: dict[str, Any], t0: float
    ) -> None:
        trial = VariantResult(vr.kind, vr.kind, vr.format, vr.precision)
        trial.details = {k: v for k, v in vr.details.items() if k not in ("weight_bytes",)}
        self.measure(trial, scratch, _entry(vr.format))
        if vr.kind == "openvino-int8":
            log["accuracy_control"] = f"finished in {time.monotonic() - t0:.0f} s"
        if (trial.accuracy_bp or 0) <= (vr.accuracy_bp or 0):
            why = f"the search's copy is no better ({trial.accuracy_bp} bp): kept as made"
            self._note(vr, "nncf" if vr.kind == "openvino-int8" else "", log, why)
            return
        files = ("model.bin", IR) if vr.format == "openvino" else (MODEL,)
        for f in files:  # the entrypoint last
            (scratch / f).replace(vdir / f)
        if vr.kind == "openvino-int8":
            log["mode"] = "accuracy-control"
        for name in ("variant", "precision", "accuracy_bp", "latency_us", "measured_peak_bytes"):
            setattr(vr, name, getattr(trial, name))
        vr.details.update({k: v for k, v in trial.details.items() if k != "nncf"})

    def _note(self, vr: VariantResult, key: str, log: dict[str, Any], text: str) -> None:
        if key == "nncf":
            log["accuracy_control"] = text
            text = f"accuracy control {text}"
        elif key:
            vr.details[key] = {"stopped": text}
            text = f"search {text}"
        self.ctx.result.notes.append(f"{vr.variant}: {text}")
