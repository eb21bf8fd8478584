"""The state one build shares between its steps (options, staging, deadline, progress,
the result being filled) and the one way a step runs: timed, against the deadline,
its failure recorded as the variant's reason while the build goes on."""

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
from runtime.factory.results import BuildResult, Progress, VariantResult
from runtime.factory.spec import BuildOptions

log = logging.getLogger(__name__)


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

    def step(
        self, vr: VariantResult, make: Callable[[Path], None], *, always: bool = False
    ) -> VariantResult:
        """Run ``make(variant_dir)`` for ``vr`` (it sets entrypoint, accuracy, latency);
        fill bytes and peak memory from the files; any exception fails this variant only.
        A step starts only while the time budget lasts, unless ``always`` (the source's
        own variant: a copy, and the family's baseline)."""
        self.progress.begin(vr.variant, self.total_steps)
        t0 = time.monotonic()
        vdir = self.staged / "variants" / vr.variant
        try:
            if self.out_of_time() and not always:
                raise TimeoutError("the time budget was spent before this step")
            make(self.variant_dir(vr.variant))
            _, vr.bytes = variant_files(vdir)
            vr.peak_memory_bytes = estimate_peak_memory(vr.format, vr.bytes, vr.runtime_bytes)
            vr.ok = True
        except ImportError as e:
            vr.reason = f"{e.name or 'a library'} is not installed: {e}"
        except KeyboardInterrupt:
            raise
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
        self.result.variants.append(vr)
        self.progress.end(vr.variant, vr)
        return vr
