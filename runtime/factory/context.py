"""The state one build shares between its steps (options, staging, deadline, progress,
the result being filled) and the one way a step runs: timed, against the deadline,
its failure recorded as the variant's reason while the build goes on.

A step whose work can outlast the deadline runs it in a child process
(runtime/factory/child.py); what a step raises becomes its reason: the message alone for
the factory's own exceptions (a cut at the time budget, a broken graph, a failed job),
``Type: message`` for anything else."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.backend_table import estimate_peak_memory
from runtime.catalog import TensorSpec
from runtime.catalog.writer import variant_files
from runtime.factory.checks import BrokenVariant
from runtime.factory.child import JobCut, JobFailed
from runtime.factory.results import BuildResult, Progress, VariantResult
from runtime.factory.spec import BuildOptions

log = logging.getLogger(__name__)


class StepFailed(Exception):
    """A rung that cannot be made; the message is its one-line reason."""


class StepCut(StepFailed):
    """The time budget was spent before the step could start."""


# The factory's own failures: their message is the whole reason.
OWN_ERRORS = (StepFailed, BrokenVariant, JobCut, JobFailed)


@dataclass
class FamilyOutput:
    """What a family builder hands back besides its variants: the package's fields."""

    task: str
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    golden_arrays: dict[str, Any] = field(default_factory=dict)
    samples: int = 0


@dataclass
class BuildContext:
    opts: BuildOptions
    staged: Path
    work: Path
    deadline: float
    progress: Progress
    result: BuildResult
    total_steps: int = 0

    def variant_dir(self, variant: str) -> Path:
        path = self.staged / "variants" / variant
        path.mkdir(parents=True, exist_ok=True)
        return path

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def step(
        self, vr: VariantResult, make: Callable[[Path], None], *, always: bool = False
    ) -> VariantResult:
        """Run ``make(variant_dir)`` for ``vr`` (it sets entrypoint, accuracy, latency, and
        may rename the variant to what it turned out to be); fill bytes and peak memory
        (measured when the step measured it, else estimated from the files); any exception
        fails this variant only. A step starts only while the time budget lasts, unless
        ``always`` (the source's own variant: a copy, and the family's baseline)."""
        self.progress.begin(vr.variant, self.total_steps)
        t0 = time.monotonic()
        started_as = vr.variant
        vdir = self.staged / "variants" / vr.variant
        try:
            if self.out_of_time() and not always:
                raise StepCut("the time budget was spent before this step")
            make(self.variant_dir(vr.variant))
            if vr.variant != started_as:
                renamed = self.staged / "variants" / vr.variant
                vdir.rename(renamed)
                vdir = renamed
            _, vr.bytes = variant_files(vdir)
            estimate = estimate_peak_memory(vr.format, vr.bytes, vr.runtime_bytes)
            vr.peak_memory_bytes = vr.measured_peak_bytes or estimate
            vr.details["peak_memory"] = "measured" if vr.measured_peak_bytes else "estimated"
            vr.ok = True
        except ImportError as e:
            vr.reason = f"{e.name or 'a library'} is not installed: {e}"
        except KeyboardInterrupt:
            raise
        except OWN_ERRORS as e:
            vr.reason = str(e).strip().splitlines()[0][:400] if str(e).strip() else type(e).__name__
            if "cut at the time budget" in vr.reason or isinstance(e, StepCut):
                self.result.notes.append(f"{started_as}: {vr.reason}")
        except Exception as e:
            text = str(e).strip().splitlines()
            vr.reason = f"{type(e).__name__}: {text[0][:300] if text else ''}".rstrip(": ")
            log.info("variant %s failed: %s", vr.variant, vr.reason, exc_info=True)
        finally:
            vr.seconds = round(time.monotonic() - t0, 3)
            # latencies move with the machine's load: keep it beside them
            vr.details["load_avg_1m"] = round(os.getloadavg()[0], 2)
        if not vr.ok:
            shutil.rmtree(vdir, ignore_errors=True)
            vr.variant = started_as
        self.result.variants.append(vr)
        self.progress.end(vr.variant, vr)
        return vr

    def refine(self, vr: VariantResult, improve: Callable[[Path], None]) -> None:
        """Run ``improve(variant_dir)`` on a variant already made: it replaces the files
        and fields only when it finds better, and may rename the variant. Its failure is a
        note; the variant stays as it was."""
        label = f"{vr.variant} (search)"
        self.progress.begin(label, self.total_steps)
        t0 = time.monotonic()
        was = vr.variant
        vdir = self.staged / "variants" / vr.variant
        try:
            improve(vdir)
        except KeyboardInterrupt:
            raise
        except Exception as e:
            vr.variant = was
            text = str(e).strip().splitlines()
            reason = (
                text[0][:300]
                if text and isinstance(e, OWN_ERRORS)
                else (f"{type(e).__name__}: {text[0][:300] if text else ''}")
            )
            self.result.notes.append(f"{was}: the search failed: {reason}")
            log.info("refining %s failed", was, exc_info=True)
        if vr.variant != was:
            vdir.rename(self.staged / "variants" / vr.variant)
            vdir = self.staged / "variants" / vr.variant
        _, vr.bytes = variant_files(vdir)
        estimate = estimate_peak_memory(vr.format, vr.bytes, vr.runtime_bytes)
        vr.peak_memory_bytes = vr.measured_peak_bytes or estimate
        vr.seconds = round(vr.seconds + time.monotonic() - t0, 3)
        self.progress.end(label, None)
