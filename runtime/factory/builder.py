"""``build(options)``: one source model -> a measured variant family -> a model package.

The order: check the destination (before any work), read the source and the golden
set (BuildInputError for anything wrong with them), build and measure each variant
(a failing step is that variant's reason, not the build's end), mark the variants that
meet the floor, write golden.npz, package.toml, every variant.toml and
build-report.json into the staging directory, and move it into place in one rename.
Nothing is left behind when the build fails or is interrupted (Ctrl-C, or SIGTERM or
SIGHUP, which the build turns into the same KeyboardInterrupt while it runs, so that the
child processes of its steps are stopped and the staging directory removed either way).
A build killed outright (SIGKILL) cannot clean up: the next one there sweeps its staging
directory (destination.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from runtime.catalog import SCHEMA_VERSION, GoldenSet, Lineage, PackageMeta, VariantMeta
from runtime.catalog.golden import GOLDEN_FILE, write_npz
from runtime.catalog.writer import (
    variant_files,
    write_package_meta,
    write_variant_meta,
)
from runtime.factory.context import BuildContext, FamilyOutput
from runtime.factory.destination import Destination
from runtime.factory.measure import reference_cpu
from runtime.factory.results import BuildResult, NoProgress, Progress
from runtime.factory.spec import BuildInputError, BuildOptions
from runtime.files import sha256_file

if TYPE_CHECKING:
    from runtime.factory.encoder_build import EncoderFamily
    from runtime.factory.gguf_build import GgufFamily
    from runtime.factory.onnx_build import OnnxFamily

log = logging.getLogger(__name__)

REPORT_FILE = "build-report.json"
# Ctrl-C, a service manager's stop (SIGTERM) and the terminal closing (SIGHUP) end a
# build alike; the default action of the last two would kill it with its staging left.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
IMPORT_RETRY_S = 0.05  # a stop that came during an import is raised once it ends


class NoVariantSurvived(Exception):
    """Every variant failed or fell below the floor; ``result`` says why for each."""

    def __init__(self, result: BuildResult) -> None:
        reasons = "; ".join(
            f"{v.variant}: {v.reason or 'below the floor'}" for v in result.variants
        )
        super().__init__(f"no variant survived ({reasons or 'none was attempted'})")
        self.result = result


ENCODER = "sentence-transformers"  # the source format of a directory (encoder_build.py)


def source_format(path: Path) -> str:
    if path.is_dir():
        if (path / "config.json").is_file():
            return ENCODER
        raise BuildInputError(
            f"{path}: a directory, but not a sentence-transformers model (no config.json)"
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".gguf":
        return "gguf"
    if not path.exists():
        raise BuildInputError(f"{path}: file not found")
    raise BuildInputError(
        f"{path}: not an ONNX (.onnx) or GGUF (.gguf) model, nor a sentence-transformers directory"
    )


def build(opts: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Run the build; returns the result with ``package_path`` set. Raises
    BuildInputError (bad input, nothing written) or NoVariantSurvived."""
    t0 = time.monotonic()
    progress = progress or NoProgress()
    fmt = source_format(opts.source)
    if fmt != ENCODER and not opts.source.is_file():
        raise BuildInputError(f"{opts.source}: file not found")
    dest = Destination(
        out=opts.out, store=opts.store, replace=opts.replace, app=opts.app, version=opts.version
    )
    with _stop_signals_as_interrupt() as stop:
        try:
            try:
                staged = dest.stage()
            except BaseException:
                dest.discard()
                raise
            return _build(opts, progress, dest, staged, fmt, t0)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            # The interruption landed where a library turned it into its own error (an
            # extension module's import answers "initialization failed"): still a stop.
            if stop.asked:
                raise KeyboardInterrupt from e
            raise


class _Stop:
    """Whether a stop signal came while the build ran, and whether raising it waits for
    an import to finish."""

    asked = False
    waiting = False


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _stop_signals_as_interrupt() -> Iterator[_Stop]:
    """A stop signal raises KeyboardInterrupt in the main thread while the build runs,
    once: the cleanup it starts is not interrupted again. Not inside an import: an
    exception raised while an extension module initialises aborts the interpreter
    (protobuf's did, "Fatal Python error: Aborted"), so it waits for the import to end
    (a timer looks again every 50 ms). Elsewhere nothing changes, and a signal the caller
    ignores stays ignored (``nohup`` ignores SIGHUP so that a build outlives its terminal)."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.asked and not stop.waiting:
            return  # already stopping
        stop.asked = True
        stop.waiting = _importing(frame)
        if stop.waiting:
            signal.setitimer(signal.ITIMER_REAL, IMPORT_RETRY_S)
            return
        raise KeyboardInterrupt

    previous = {signal.SIGALRM: signal.signal(signal.SIGALRM, interrupt)}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield stop
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _build(
    opts: BuildOptions, progress: Progress, dest: Destination, staged: Path, fmt: str, t0: float
) -> BuildResult:
    try:
        work = staged / ".work"
        work.mkdir()
        result = BuildResult(
            application=opts.app,
            version=opts.version,
            source=str(opts.source),
            source_format=fmt,
            metric=opts.metric,
            floor_bp=opts.floor_bp,
            reference_cpu=reference_cpu(),
        )
        ctx = BuildContext(opts, staged, work, t0 + opts.time_budget_s, progress, result)
        family = _family(fmt, ctx)
        out = family.run()
        shutil.rmtree(work, ignore_errors=True)
        _mark(result, opts)
        if not result.kept:
            raise NoVariantSurvived(result)
        _write_package(staged, out, result, opts)
        result.wall_s = round(time.monotonic() - t0, 3)
        result.details["time_budget_s"] = opts.time_budget_s
        _write_report(staged, result)
        package = dest.commit()
        result.package_path = str(package.path)
        return result
    finally:
        dest.discard()


def _family(fmt: str, ctx: BuildContext) -> OnnxFamily | GgufFamily | EncoderFamily:
    if fmt == "onnx":
        from runtime.factory.onnx_build import OnnxFamily

        return OnnxFamily(ctx)
    if fmt == ENCODER:
        from runtime.factory.encoder_build import EncoderFamily

        return EncoderFamily(ctx)
    from runtime.factory.gguf_build import GgufFamily

    return GgufFamily(ctx)


def _mark(result: BuildResult, opts: BuildOptions) -> None:
    """Floor marks; variants below the floor leave the package unless --keep-all."""
    for v in result.variants:
        v.meets_floor = v.ok and v.accuracy_bp is not None and v.accuracy_bp >= opts.floor_bp
        v.kept = v.ok and (v.meets_floor or opts.keep_all)
        if v.ok and not v.meets_floor:
            v.reason = f"quality {v.accuracy_bp} bp is below the floor {opts.floor_bp} bp"


def _write_package(
    staged: Path, out: FamilyOutput, result: BuildResult, opts: BuildOptions
) -> None:
    for v in result.variants:
        vdir = staged / "variants" / v.variant
        if not v.kept:
            shutil.rmtree(vdir, ignore_errors=True)
            continue
        files, n_bytes = variant_files(vdir)
        meta = VariantMeta.model_validate(
            {
                "variant": v.variant,
                "format": v.format,
                "precision": v.precision,
                "pruning_bp": v.pruning_bp,
                "entrypoint": v.entrypoint,
                "files": [f.model_dump() for f in files],
                "bytes": n_bytes,
                "peak_memory_bytes": v.peak_memory_bytes,
                "device_classes": list(v.device_classes),
                "accuracy_bp": v.accuracy_bp,
                "latency_us": v.latency_us,
                "reference_cpu": result.reference_cpu,
            }
        )
        write_variant_meta(meta, vdir)
    golden = None
    if out.golden_arrays:  # an encoder's golden texts stay with the build (no tensor rows)
        write_npz(staged / GOLDEN_FILE, out.golden_arrays)
        golden = GoldenSet(
            file=GOLDEN_FILE, sha256=sha256_file(staged / GOLDEN_FILE), samples=out.samples
        )
    lineage = opts.lineage or Lineage(
        foundation=opts.app, sector="unspecified", application=opts.app
    )
    package = PackageMeta.model_validate(
        {
            # the writer lowers this to the oldest schema that holds the package
            "schema_version": SCHEMA_VERSION,
            "application": opts.app,
            "version": opts.version,
            "task": out.task,
            "description": opts.description,
            "lineage": lineage,
            "accuracy_floor_bp": opts.floor_bp,
            "latency_budget_us": opts.latency_budget_us,
            "inputs": list(out.inputs),
            "outputs": list(out.outputs),
            "golden": golden,
            # top1 is what a schema-1 package means: leave it out, stay readable by old boxes
            "quality_metric": None if result.metric == "top1" else result.metric,
        }
    )
    write_package_meta(package, staged)


def _write_report(staged: Path, result: BuildResult) -> None:
    (staged / REPORT_FILE).write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
