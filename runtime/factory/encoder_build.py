"""The encoder family: a sentence-transformers directory -> ONNX -> fp32, fp16 and
int8-dynamic variants of an embedding package, each measured as the box will serve it.

The source is converted once by the one converter (runtime.factory.encoder_export: the
fp32 graph and tokenizer.json); the source model's own vectors over the golden texts
(torch, sentence-transformers' mean pooling) are the reference. Each rung is written by
the runtime's own tool (runtime.factory.onnx_variants: ``make_fp16``, onnxruntime's
``quantize_dynamic``, the embedding table included, per channel; static int8 needs
calibration tensors an encoder build has no use for, and dynamic int8 is what works for
transformers on a CPU), then loaded by the onnx
backend's embedding path (tokenizer, graph, pooling, normalisation: runtime.backends.
onnx_embed) and scored:

- quality: ``fidelity``, the mean cosine similarity of its vectors to the reference over
  the golden texts, in basis points (the lowest is in the report's details);
- latency: the median of one text at a time, after a warm-up;
- bytes and peak memory: from the files (the build's estimate).

The golden file is text: one text a line (.txt), or a JSON list of strings (.json). The
package has task ``embedding`` and no golden.npz (its texts are the build's, not a tensor
golden set a trial could run). A rung runs in this process: the time budget is checked
before each one starts.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from runtime.factory.context import BuildContext, FamilyOutput, StepFailed
from runtime.factory.encoder_export import (
    EncoderExport,
    check_source,
    export_encoder,
    read_golden_texts,
    source_vectors,
)
from runtime.factory.results import VariantResult
from runtime.factory.spec import ENCODER_VARIANTS, BuildInputError

MODEL = "model.onnx"
TOKENIZER = "tokenizer.json"
BATCH = 32
WARMUP = 3
# int8: the projections and the embedding table (a third of a small encoder's bytes),
# weights per channel: with 7-bit weights (reduce-range, safe on CPUs without VNNI) a
# per-tensor scale cost all-MiniLM-L6-v2 a tenth of its cosine, per channel under 1%.
INT8_OPS = ("MatMul", "Attention", "Gather")
# (precision, device classes) of each rung
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fp32": ("fp32", ("cpu", "gpu")),
    "fp16": ("fp16", ("cpu", "gpu")),
    "int8-dynamic": ("int8", ("cpu",)),
}


class EncoderFamily:
    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.opts = opts = ctx.opts
        self.max_tokens = check_source(opts.source)
        if opts.metric not in ("auto", "fidelity"):
            raise BuildInputError(
                f"--metric {opts.metric}: an encoder is scored by fidelity (the cosine "
                "similarity of its vectors to the source's)"
            )
        kinds = opts.variants or ENCODER_VARIANTS
        unknown = [k for k in kinds if k not in ENCODER_VARIANTS]
        if unknown:
            raise BuildInputError(
                f"--variants: {', '.join(unknown)} is not built for a sentence encoder "
                f"(one of {', '.join(ENCODER_VARIANTS)})"
            )
        self.kinds = [k for k in ENCODER_VARIANTS if k in kinds]
        self.texts = read_golden_texts(opts.golden)
        self.reference = np.zeros((0, 0), np.float32)

    def run(self) -> FamilyOutput:
        ctx, opts = self.ctx, self.opts
        exported = export_encoder(opts.source, ctx.work / "export")
        self.reference = source_vectors(opts.source, self.texts, self.max_tokens)
        ctx.result.metric = "fidelity"
        ctx.result.reference_bp = 10_000
        ctx.result.reference_bytes = sum(
            f.stat().st_size for f in opts.source.glob("*.safetensors")
        ) or sum(f.stat().st_size for f in opts.source.glob("*.bin"))
        ctx.result.details["encoder"] = {
            "dimensions": exported.dimensions, "max_tokens": exported.max_tokens,
            "golden_texts": len(self.texts),
        }  # fmt: skip
        ctx.total_steps = len(self.kinds)
        for kind in self.kinds:
            precision, devices = KINDS[kind]
            vr = VariantResult(kind, kind, "onnx", precision, pruning_bp=opts.pruning_bp,
                               device_classes=devices)  # fmt: skip
            ctx.step(vr, functools.partial(self._make, kind, vr, exported), always=kind == "fp32")
            if kind == "fp32" and vr.ok:
                ctx.result.reference_latency_us = vr.latency_us
        return FamilyOutput(task="embedding")

    def _make(self, kind: str, vr: VariantResult, exported: EncoderExport, vdir: Path) -> None:
        from runtime.factory.onnx_variants import make_fp16, make_int8_dynamic

        shutil.copyfile(exported.tokenizer, vdir / TOKENIZER)
        if kind == "fp32":
            shutil.copyfile(exported.model, vdir / MODEL)
        elif kind == "fp16":
            make_fp16(exported.model, vdir / MODEL)
        else:
            make_int8_dynamic(exported.model, vdir / MODEL, self.opts.int8_scheme,
                              ops=INT8_OPS, per_channel=True)  # fmt: skip
            vr.details.update(scheme=self.opts.int8_scheme, ops=list(INT8_OPS), per_channel=True)
        vectors, latency_us = measure_encoder(vdir, self.texts, self.opts.latency_samples)
        if vectors.shape != self.reference.shape:
            raise StepFailed(
                f"its vectors are {vectors.shape}, the source's {self.reference.shape}"
            )
        cosine = (vectors * self.reference).sum(axis=1)
        vr.entrypoint = MODEL
        vr.accuracy_bp = int(np.floor(float(cosine.mean()) * 10_000))
        vr.latency_us = latency_us
        vr.details["min_cosine_bp"] = int(np.floor(float(cosine.min()) * 10_000))


def measure_encoder(vdir: Path, texts: list[str], samples: int) -> tuple[np.ndarray, int]:
    """Load the rung in ``vdir`` with the onnx backend's embedding path on the CPU: its
    vectors for ``texts`` [n, dim] and the median microseconds of one text."""
    from runtime.backends.base import LoadOptions
    from runtime.backends.registry import create_backend
    from runtime.catalog import FileEntry, Variant, VariantMeta

    files = tuple(FileEntry(path=n, sha256="0" * 64, size=0) for n in (MODEL, TOKENIZER))
    meta = VariantMeta(variant="measuring", format="onnx", precision="fp32", entrypoint=MODEL,
                       files=files, bytes=0, peak_memory_bytes=0)  # fmt: skip
    backend = create_backend("onnx")
    backend.load(Variant(meta, vdir), LoadOptions(device="cpu", task="embedding"))
    try:
        parts = []
        for start in range(0, len(texts), BATCH):
            rows = np.array(texts[start : start + BATCH], dtype=object)
            parts.append(np.asarray(backend.infer({"text": rows})["embedding"], np.float32))
        timed = []
        for i in range(WARMUP + max(1, samples)):
            one = np.array([texts[i % len(texts)]], dtype=object)
            t0 = time.perf_counter_ns()
            backend.infer({"text": one})
            if i >= WARMUP:
                timed.append(time.perf_counter_ns() - t0)
    finally:
        backend.unload()
    return np.concatenate(parts, axis=0), max(1, int(statistics.median(timed) // 1000))
