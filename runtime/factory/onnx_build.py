"""The ONNX family: from one fp32 ONNX source, the variants of ``ONNX_VARIANTS`` (and
the already-pruned models of ``--add-variant``), each measured through the backend that
will serve it, on the golden rows, under the package's metric."""

from __future__ import annotations

import functools
import importlib.util
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog.golden import TensorGolden, read_tensor_golden, tensor_golden_arrays
from runtime.catalog.inspect import inspect_model, inspect_onnx
from runtime.catalog.quality import score_bp
from runtime.errors import MetadataError
from runtime.factory import onnx_variants, openvino_variants
from runtime.factory.context import BuildContext, FamilyOutput
from runtime.factory.exclusion import int8_static_within
from runtime.factory.measure import measure_tensor_variant
from runtime.factory.results import VariantResult
from runtime.factory.spec import ONNX_VARIANTS, BuildInputError, ExtraVariant

log = logging.getLogger(__name__)

MODEL = "model.onnx"
IR = "model.xml"
# (format, precision, device classes) of each variant kind
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "fp32": ("onnx", "fp32", ("cpu", "gpu")),
    "fp16": ("onnx", "fp16", ("cpu", "gpu")),
    "int8-dynamic": ("onnx", "int8", ("cpu",)),
    "int8-static": ("onnx", "int8", ("cpu",)),
    "openvino-fp16": ("openvino", "fp16", ("cpu", "gpu", "npu")),
    "openvino-int8": ("openvino", "int8", ("cpu", "gpu", "npu")),
}


# the Python packages a variant kind needs beyond onnx and onnxruntime
NEEDS: dict[str, tuple[str, ...]] = {
    "openvino-fp16": ("openvino",),
    "openvino-int8": ("openvino", "nncf"),
}


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


class OnnxFamily:
    """One build of an ONNX source; ``run()`` fills ``ctx.result`` and returns the
    package's fields."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.opts = ctx.opts
        onnx_variants.load_model(self.opts.source)  # BuildInputError when unreadable
        try:
            self.info = inspect_onnx(self.opts.source)
        except MetadataError as e:
            raise BuildInputError(e.message) from e
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

    # --- measuring ---------------------------------------------------------------------

    def _quality(self, outputs: np.ndarray, rows: Any = None) -> int:
        refs: Mapping[str, np.ndarray] = self.refs
        if rows is not None:
            refs = {k: (v[rows] if v.ndim > 0 else v) for k, v in self.refs.items()}
        return score_bp(self.metric, outputs, refs)

    def _measure(self, vr: VariantResult, vdir: Path, entry: str, latency: bool = True) -> None:
        m = measure_tensor_variant(
            vr.format,
            vdir,
            entry,
            self.golden.inputs,
            output=self.output,
            latency_samples=self.opts.latency_samples if latency else 0,
        )
        vr.entrypoint = entry
        vr.accuracy_bp = self._quality(m.first_output)
        vr.latency_us = m.latency_us
        # What the weights are stored as, read from the file: an int8 variant whose search
        # kept most of the model in float says fp32, so selection is not misled by its name.
        vr.precision = inspect_model(vdir / entry).precision

    def _score_file(self, path: Path) -> int:
        m = measure_tensor_variant(
            "onnx", path.parent, path.name, self.golden.inputs, output=self.output,
            latency_samples=0,
        )  # fmt: skip
        return self._quality(m.first_output)

    # --- the run -----------------------------------------------------------------------

    def run(self) -> FamilyOutput:
        ctx, opts = self.ctx, self.opts
        prepared = ctx.work / "prepared.onnx"
        ctx.result.notes += onnx_variants.prepare(opts.source, prepared)
        ref = measure_tensor_variant(
            "onnx", ctx.work, prepared.name, self.golden.inputs, output=self.output,
            latency_samples=opts.latency_samples,
        )  # fmt: skip
        self.metric = resolve_metric(opts.metric, self.golden, ref.first_output)
        arrays = tensor_golden_arrays(
            self.golden, self.metric, ref.first_output, opts.fidelity_tolerance
        )
        self.refs = {k: v for k, v in arrays.items() if k not in self.golden.inputs}
        self.reference_bp = self._quality(ref.first_output)
        ctx.result.metric = self.metric
        ctx.result.reference_bp = self.reference_bp
        ctx.result.reference_latency_us = ref.latency_us
        ctx.result.reference_bytes = opts.source.stat().st_size
        kinds = list(opts.variants) if opts.variants is not None else self._default_kinds()
        ctx.total_steps = len(kinds) + len(opts.extra_variants)
        for kind in kinds:
            fmt, precision, devices = KINDS[kind]
            vr = VariantResult(
                kind, kind, fmt, precision, pruning_bp=opts.pruning_bp, device_classes=devices
            )
            make = functools.partial(self._make, kind, vr, prepared=prepared)
            ctx.step(vr, make, always=kind == "fp32")
        for extra in opts.extra_variants:
            self._add(extra)
        return FamilyOutput(
            task="tensor",
            inputs=self.info.inputs,
            outputs=self.info.outputs,
            golden_arrays=arrays,
            samples=self.golden.rows,
        )

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

    def _make(self, kind: str, vr: VariantResult, vdir: Path, *, prepared: Path) -> None:
        opts = self.opts
        if kind == "fp32":
            shutil.copyfile(prepared, vdir / MODEL)
        elif kind == "fp16":
            onnx_variants.make_fp16(prepared, vdir / MODEL)
        elif kind == "int8-dynamic":
            onnx_variants.make_int8_dynamic(prepared, vdir / MODEL, opts.int8_scheme)
            vr.details["scheme"] = opts.int8_scheme
        elif kind == "int8-static":
            search = int8_static_within(
                prepared,
                vdir / MODEL,
                self.calibration,
                scheme=opts.int8_scheme,
                score=self._score_file,
                reference_bp=self.reference_bp,
                max_drop_bp=opts.max_drop_bp,
                deadline=self.ctx.deadline,
            )
            vr.details["int8_search"] = search.to_dict()
            vr.details["scheme"] = opts.int8_scheme
        elif kind == "openvino-fp16":
            openvino_variants.make_ir_fp16(prepared, vdir / IR)
        elif kind == "openvino-int8":
            openvino_variants.make_ir_int8(
                prepared,
                vdir / IR,
                self.golden.inputs,
                quality=self._quality,
                max_drop_bp=opts.max_drop_bp,
            )
        else:  # pragma: no cover - the CLI checks names
            raise ValueError(f"unknown variant kind {kind!r}")
        self._measure(vr, vdir, IR if vr.format == "openvino" else MODEL)

    def _add(self, extra: ExtraVariant) -> None:
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
            onnx_variants.prepare(extra.path, vdir / MODEL)
            vr.precision = info.precision
            self._measure(vr, vdir, MODEL)

        self.ctx.step(vr, make)
