"""The ONNX family: from one fp32 ONNX source, the variants of ``ONNX_VARIANTS`` (and
the already-pruned models of ``--add-variant``), each measured through the backend that
will serve it, on the golden rows, under the package's metric.

The source is prepared once (runtime/factory/onnx_prepare.py); its outputs on the golden
rows are the reference every rung is scored against; each rung is made and measured in
child processes stopped at the build's deadline (runtime/factory/onnx_rungs.py).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog.golden import (
    TensorGolden,
    read_tensor_golden,
    tensor_golden_arrays,
    write_npz,
)
from runtime.catalog.inspect import inspect_onnx
from runtime.catalog.quality import score_bp
from runtime.errors import MetadataError
from runtime.factory import onnx_prepare
from runtime.factory.child import JobCut, JobFailed, run_job
from runtime.factory.context import BuildContext, FamilyOutput
from runtime.factory.measure import daemon_threads
from runtime.factory.onnx_rungs import MODEL, REFINABLE, Rungs, Shared
from runtime.factory.results import VariantResult
from runtime.factory.spec import ONNX_VARIANTS, BuildInputError, ExtraVariant

log = logging.getLogger(__name__)

# (format, precision, device classes) of each variant kind
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "fp32": ("onnx", "fp32", ("cpu", "gpu")),
    "fp16": ("onnx", "fp16", ("cpu", "gpu")),
    "int8-dynamic": ("onnx", "int8", ("cpu",)),
    "int8-static": ("onnx", "int8", ("cpu",)),
    "int8-weights": ("onnx", "int8", ("cpu", "gpu")),
    "openvino-fp16": ("openvino", "fp16", ("cpu", "gpu", "npu")),
    "openvino-int8": ("openvino", "int8", ("cpu", "gpu", "npu")),
}


# the Python packages a variant kind needs beyond onnx and onnxruntime
NEEDS: dict[str, tuple[str, ...]] = {
    "openvino-fp16": ("openvino",),
    "openvino-int8": ("openvino", "nncf"),
}
PRIORITY = ("fp32", "int8-static", "openvino-int8", "int8-weights", "fp16", "openvino-fp16",
            "int8-dynamic")  # fmt: skip
MEASURE_MARGIN = 1.5  # the reserve for measuring a rung: this times the fp32 measurement
# The source's outputs and the fp32 rung are the family's baseline: measured even when the
# budget is smaller than that takes, up to this long after the build started (within the
# "budget + 10 s" a build may end at).
BASELINE_GRACE_S = 8.0


def resolve_metric(requested: str, golden: TensorGolden, first_output: np.ndarray) -> str:
    """``auto``: top1 when the golden set has labels, agreement for a classifier's
    [rows, classes] output, fidelity otherwise."""
    if requested == "top1" and golden.labels is None:
        raise BuildInputError("--metric top1 needs a labels array in the golden set")
    if requested == "token_agreement":
        raise BuildInputError("--metric token_agreement is for GGUF (text) sources")
    if requested != "auto":
        return requested
    if golden.labels is not None:
        return "top1"
    out = np.asarray(first_output)
    return "agreement" if out.ndim == 2 and out.shape[1] > 1 else "fidelity"


def _refine_into(rungs: Rungs, vr: VariantResult, deadline: float, vdir: Path) -> None:
    rungs.refine(vr, vdir, deadline)


class OnnxFamily:
    """One build of an ONNX source; ``run()`` fills ``ctx.result`` and returns the
    package's fields."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.opts = ctx.opts
        onnx_prepare.read_graph(self.opts.source)  # BuildInputError when it is not ONNX
        try:  # next: it refuses external data outside the model's folder before a read
            self.info = inspect_onnx(self.opts.source)
        except MetadataError as e:
            raise BuildInputError(e.message) from e
        onnx_prepare.load_model(self.opts.source)  # BuildInputError when unreadable
        self.golden = read_tensor_golden(self.opts.golden, self.info.inputs)
        self.calibration = (
            read_tensor_golden(self.opts.calibration, self.info.inputs, "calibration").inputs
            if self.opts.calibration is not None
            else self.golden.inputs
        )
        self.output = self.info.outputs[0].name if self.info.outputs else None
        self.refs: dict[str, np.ndarray] = {}
        self.metric = "top1"
        self.reference_bp = 0
        self.threads = (1, 1)

    def _quality(self, outputs: np.ndarray, rows: Any = None) -> int:
        refs: Mapping[str, np.ndarray] = self.refs
        if rows is not None:
            refs = {k: (v[rows] if v.ndim > 0 else v) for k, v in self.refs.items()}
        return score_bp(self.metric, outputs, refs)

    # --- the run -----------------------------------------------------------------------

    def _baseline_deadline(self) -> float:
        started = self.ctx.deadline - self.opts.time_budget_s
        return max(self.ctx.deadline, started + BASELINE_GRACE_S)

    def _reference(self, inputs_npz: Path) -> tuple[np.ndarray, float]:
        """The source's first output over the golden rows (and the seconds it took), in a
        child stopped at the deadline: BuildInputError when the rows do not fit the model."""
        out = self.ctx.work / "reference.npy"
        args = {
            "golden": str(inputs_npz), "specs": [s.model_dump() for s in self.info.inputs],
            "output": self.output, "fmt": "onnx", "dir": str(self.opts.source.parent),
            "entry": self.opts.source.name, "samples": 0, "threads": [0, 1],
            "outputs_file": str(out),
        }  # fmt: skip
        t0 = time.monotonic()
        try:
            run_job("measure", args, deadline=self._baseline_deadline(), work=self.ctx.work)
        except JobCut as e:
            raise BuildInputError(
                f"--time-budget {self.opts.time_budget_s:g} s: too short to run the source "
                f"model on the golden rows (cut after {e.seconds:.0f} s)"
            ) from e
        except JobFailed as e:
            raise BuildInputError(
                f"{self.opts.golden}: the source model cannot run the golden rows: {e}"
            ) from e
        return np.load(out), time.monotonic() - t0

    def run(self) -> FamilyOutput:
        ctx, opts = self.ctx, self.opts
        intra, inter, where = daemon_threads()
        self.threads = (intra, inter)
        ctx.result.details["threads"] = {"intra_op": intra, "inter_op": inter, "from": where}
        prepared = onnx_prepare.prepare(
            opts.source, ctx.work / "prepared.onnx", deadline=self._baseline_deadline()
        )
        ctx.result.notes += prepared.notes
        inputs_npz = write_npz(ctx.work / "inputs.npz", self.golden.inputs)
        ref, ref_s = self._reference(inputs_npz)
        self.metric = resolve_metric(opts.metric, self.golden, ref)
        arrays = tensor_golden_arrays(self.golden, self.metric, ref, opts.fidelity_tolerance)
        self.refs = {k: v for k, v in arrays.items() if k not in self.golden.inputs}
        self.reference_bp = self._quality(ref)
        np.save(ctx.work / "reference-output.npy", ref)
        shared = Shared(
            prepared=prepared.path,
            per_channel=prepared.per_channel,
            golden=write_npz(ctx.work / "golden.npz", arrays),
            calibration=write_npz(ctx.work / "calibration.npz", self.calibration),
            reference=ctx.work / "reference-output.npy",
            specs=self.info.inputs,
            output=self.output,
            metric=self.metric,
            reference_bp=self.reference_bp,
            threads=self.threads,
        )
        rungs = Rungs(ctx, shared, self._quality, baseline_deadline=self._baseline_deadline())
        rungs.measure_reserve_s = max(5.0, MEASURE_MARGIN * ref_s)
        ctx.result.metric = self.metric
        ctx.result.reference_bp = self.reference_bp
        ctx.result.reference_bytes = opts.source.stat().st_size
        kinds = list(opts.variants) if opts.variants is not None else self._default_kinds()
        # the baseline first, then the int8 rungs (the smallest-variant promise), while
        # the budget is freshest
        kinds.sort(key=lambda k: PRIORITY.index(k) if k in PRIORITY else len(PRIORITY))
        ctx.total_steps = len(kinds) + len(opts.extra_variants)
        for kind in kinds:
            fmt, precision, devices = KINDS[kind]
            vr = VariantResult(
                kind, kind, fmt, precision, pruning_bp=opts.pruning_bp, device_classes=devices
            )
            ctx.step(vr, functools.partial(rungs.make, kind, vr), always=kind == "fp32")
            if kind == "fp32" and vr.ok:
                ctx.result.reference_latency_us = vr.latency_us
                # the reserve for measuring a rung: what measuring fp32 took, and a margin
                rungs.measure_reserve_s = max(rungs.measure_reserve_s, MEASURE_MARGIN * vr.seconds)
        for extra in opts.extra_variants:
            self._add(extra, rungs)
        self._refine(rungs)
        return FamilyOutput(
            task="tensor",
            inputs=self.info.inputs,
            outputs=self.info.outputs,
            golden_arrays=arrays,
            samples=self.golden.rows,
        )

    def _refine(self, rungs: Rungs) -> None:
        """Pass 2 (runtime/factory/onnx_rungs.py): the rungs below the drop allowed search
        for what to keep in float, each with an equal share of the time that is left."""
        todo = [v for kind in REFINABLE for v in self.ctx.result.variants
                if v.kind == kind and rungs.refinable(v)]  # fmt: skip
        self.ctx.total_steps += len(todo)
        for i, vr in enumerate(todo):
            left = self.ctx.deadline - rungs.measure_reserve_s - time.monotonic()
            deadline = time.monotonic() + max(0.0, left) / (len(todo) - i)
            self.ctx.refine(vr, functools.partial(_refine_into, rungs, vr, deadline))

    def _default_kinds(self) -> list[str]:
        """Every variant whose libraries are installed; the others are a note, not a
        failure (asked for by name with --variants, a missing library is its reason)."""
        kinds = []
        for kind in ONNX_VARIANTS:
            missing = [m for m in NEEDS.get(kind, ()) if importlib.util.find_spec(m) is None]
            if missing:
                self.ctx.result.notes.append(f"{kind} skipped: {', '.join(missing)} not installed")
            else:
                kinds.append(kind)
        return kinds

    def _add(self, extra: ExtraVariant, rungs: Rungs) -> None:
        """An already-pruned model from ``--add-variant``: prepared and measured as-is."""
        vr = VariantResult(
            extra.variant, "added", "onnx", "fp32", pruning_bp=extra.pruning_bp,
            device_classes=("cpu", "gpu"),
        )  # fmt: skip

        def make(vdir: Path) -> None:
            try:
                info = inspect_onnx(extra.path)
            except MetadataError as e:
                raise BuildInputError(e.message) from e
            names = [s.name for s in info.inputs]
            if names != [s.name for s in self.info.inputs]:
                raise BuildInputError(
                    f"{extra.path}: inputs {names} differ from the source's "
                    f"{[s.name for s in self.info.inputs]}"
                )
            onnx_prepare.prepare(extra.path, vdir / MODEL, deadline=self.ctx.deadline)
            rungs.measure(vr, vdir, MODEL)

        self.ctx.step(vr, make)
