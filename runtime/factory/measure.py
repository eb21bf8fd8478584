"""Measuring one tensor variant through the backend that will serve it: its outputs on
the golden rows (for the quality metric) and its median single-request latency on one
thread, like the demo's ``latency_us``: the figure describes the model, not the
machine's momentary load or its core count."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.backends.base import LoadOptions
from runtime.backends.registry import create_backend
from runtime.catalog import FileEntry, Variant, VariantMeta

WARMUP = 20
BATCH = 64
Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Measured:
    first_output: np.ndarray  # the first output over every golden row
    latency_us: int


def _probe_variant(fmt: str, vdir: Path, entrypoint: str) -> Variant:
    # The backends open ``variant.entrypoint``; the rest of the metadata is not read.
    meta = VariantMeta(
        variant="measuring",
        format=fmt,
        precision="fp32",
        entrypoint=entrypoint,
        files=(FileEntry(path=entrypoint, sha256="0" * 64, size=0),),
        bytes=0,
        peak_memory_bytes=0,
    )
    return Variant(meta, vdir)


def first_output(run: Runner, inputs: Mapping[str, np.ndarray], output: str | None) -> np.ndarray:
    """``run`` over every row in batches, the named (else first) output concatenated."""
    n = len(next(iter(inputs.values())))
    parts = []
    for i in range(0, n, BATCH):
        out = run({k: v[i : i + BATCH] for k, v in inputs.items()})
        parts.append(np.asarray(out[output] if output else next(iter(out.values()))))
    return np.concatenate(parts, axis=0)


def latency_us(run: Runner, inputs: Mapping[str, np.ndarray], samples: int) -> int:
    """Median single-row latency in microseconds after a warm-up."""
    n = len(next(iter(inputs.values())))
    rows = [
        {k: np.ascontiguousarray(v[i % n : i % n + 1]) for k, v in inputs.items()}
        for i in range(samples)
    ]
    for row in rows[:WARMUP]:
        run(row)
    times = []
    for row in rows:
        t0 = time.perf_counter_ns()
        run(row)
        times.append(time.perf_counter_ns() - t0)
    return max(1, int(np.median(times) // 1000))


def measure_tensor_variant(
    fmt: str,
    vdir: Path,
    entrypoint: str,
    inputs: Mapping[str, np.ndarray],
    *,
    output: str | None = None,
    latency_samples: int = 200,
) -> Measured:
    """Load the variant in ``vdir`` with its real backend on the CPU (one thread), run the
    golden rows through it and time single requests. Raises what the backend raises
    (BackendUnavailable, BackendLoadError, InferenceFailed)."""
    backend = create_backend(fmt)
    backend.load(
        _probe_variant(fmt, vdir, entrypoint),
        LoadOptions(device="cpu", intra_op_threads=1, inter_op_threads=1),
    )
    try:
        out = first_output(backend.infer, inputs, output)
        lat = latency_us(backend.infer, inputs, latency_samples) if latency_samples else 0
    finally:
        backend.unload()
    return Measured(out, lat)


def reference_cpu() -> str:
    """The CPU model name the latencies were measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()[:120]
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
