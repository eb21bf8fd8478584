"""Measuring one tensor variant through the backend that will serve it: its outputs on the
golden rows (for the quality metric), its median latency for one request at the golden
shape (batch 1, or one whole row for a model whose rows are whole requests) with the
thread count the daemon will use, and, in a process of its own, the peak memory that
loading and running it added (measured: the process's high-water mark of resident memory
against what it held before the load).

The build runs each measurement in a child process (runtime/factory/child.py), so that
the deadline stops it and the memory figure is the variant's alone.
"""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.backends.base import LoadOptions
from runtime.backends.registry import create_backend
from runtime.catalog import FileEntry, TensorSpec, Variant, VariantMeta
from runtime.catalog.golden import RowLayout

WARMUP = 20
MIN_TIMED = 5  # timed requests a measurement makes even past its deadline
EARLIER_SLACK = 4 << 20  # an earlier high-water mark this close to the baseline is noise
BATCH = 64
Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Measured:
    first_output: np.ndarray  # the first output over every golden row
    latency_us: int
    latency_samples: int = 0  # timed requests behind the median
    peak_memory_bytes: int | None = None  # measured growth of resident memory


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


def first_output(
    run: Runner,
    inputs: Mapping[str, np.ndarray],
    output: str | None,
    layout: RowLayout | None = None,
) -> np.ndarray:
    """``run`` over every row in requests of up to BATCH rows, the named (else first)
    output concatenated."""
    layout = layout or RowLayout()
    parts = []
    for request in layout.requests(inputs, list(inputs), BATCH):
        out = run(request)
        parts.append(np.asarray(out[output] if output else next(iter(out.values()))))
    return np.concatenate(parts, axis=0)


def latency_us(
    run: Runner,
    inputs: Mapping[str, np.ndarray],
    samples: int,
    *,
    layout: RowLayout | None = None,
    deadline: float | None = None,
) -> int:
    """Median latency of one request of one row, in microseconds, after a warm-up; stops
    early at ``deadline`` (time.monotonic()) once MIN_TIMED requests are timed."""
    return latency(run, inputs, samples, layout=layout, deadline=deadline)[0]


def latency(
    run: Runner,
    inputs: Mapping[str, np.ndarray],
    samples: int,
    *,
    layout: RowLayout | None = None,
    deadline: float | None = None,
) -> tuple[int, int]:
    """(median microseconds, requests timed); see ``latency_us``."""
    layout = layout or RowLayout()
    names = list(inputs)
    n = len(next(iter(inputs.values())))
    rows = [layout.request(inputs, names, [i % n]) for i in range(min(samples, n))]
    for i in range(min(WARMUP, samples)):
        run(rows[i % len(rows)])
    times: list[int] = []
    for i in range(samples):
        t0 = time.perf_counter_ns()
        run(rows[i % len(rows)])
        times.append(time.perf_counter_ns() - t0)
        if deadline is not None and len(times) >= MIN_TIMED and time.monotonic() > deadline:
            break
    return max(1, int(np.median(times) // 1000)), len(times)


def _rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak() -> bool:
    """Reset the process's resident high-water mark (VmHWM) to its current size (Linux
    4.0+, writing 5 to clear_refs): the peak read later is then this variant's alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_bytes() -> int:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def measure_tensor_variant(
    fmt: str,
    vdir: Path,
    entrypoint: str,
    inputs: Mapping[str, np.ndarray],
    *,
    output: str | None = None,
    latency_samples: int = 200,
    specs: Sequence[TensorSpec] = (),
    threads: tuple[int, int] = (1, 1),
    deadline: float | None = None,
) -> Measured:
    """Load the variant in ``vdir`` with its real backend on the CPU (``threads``: intra-
    and inter-op, 0 for the backend's own default as the daemon leaves it), run the golden
    rows through it and time single requests. Raises what the backend raises
    (BackendUnavailable, BackendLoadError, InferenceFailed)."""
    layout = RowLayout.of(specs, inputs)
    backend = create_backend(fmt)
    reset = _reset_peak()
    before, high_before = _rss_bytes(), _peak_rss_bytes()
    backend.load(
        _probe_variant(fmt, vdir, entrypoint),
        LoadOptions(device="cpu", intra_op_threads=threads[0], inter_op_threads=threads[1]),
    )
    try:
        # Batch 1 first (one row, then the timed loop): the peak memory is read before the
        # golden rows go through in batches, which serving one request at a time never sees.
        names = list(inputs)
        backend.infer(layout.request(inputs, names, [0]))
        lat, timed = (
            latency(backend.infer, inputs, latency_samples, layout=layout, deadline=deadline)
            if latency_samples
            else (0, 0)
        )
        # The high-water mark counts what the process held before the load; when an
        # earlier moment of the process was higher still, the variant's own peak is unknown.
        high = max(_peak_rss_bytes(), _rss_bytes())
        clean = reset or high_before <= before + EARLIER_SLACK
        peak = max(0, high - before) if before and clean else None
        out = first_output(backend.infer, inputs, output, layout)
    finally:
        backend.unload()
    return Measured(out, lat, timed, peak)


def daemon_threads() -> tuple[int, int, str]:
    """(intra-op, inter-op, where from): the threads the daemon on this machine would give
    a variant, from the device profile it matches (0: the runtime's own default, which the
    backends set as runtime/backends/onnx.py ``default_intra_op_threads`` says)."""
    try:
        from runtime.config import Settings
        from runtime.hardware.probe import probe
        from runtime.profiles import default_profiles_dir, load_profiles, match, profile_by_name

        settings = Settings()
        profiles = load_profiles(default_profiles_dir(settings))
        if settings.profile:
            profile = profile_by_name(profiles, settings.profile)
        else:
            profile = match(probe("/", runtimes=()), profiles).profile
    except Exception as e:  # a broken config file must not stop a build: say so instead
        return 0, 1, f"the runtimes' defaults (no device profile: {e})"
    return profile.threads.intra_op, profile.threads.inter_op, f"device profile {profile.name}"


def reference_cpu() -> str:
    """The CPU model name the latencies were measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()[:120]
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
