"""The loader: select a variant, verify its files, and load it along the fallback chain.

``VariantLoader(box, measure)(package, force)`` is BLOCKING (the service runs it in a
thread). It asks the box (runtime.box: floor, pins, objective) to select, with what
``measure(package)`` returns (runtime.loading.calibrator: cached or measured now, on this
thread), then for the chosen variant tries each
(backend, device) target the selection kept, in the profile's order; when every target
fails it moves to the next ranked variant. Every try is recorded as a LoadAttempt with
the error text, so /status can say what is in use and why the others failed. Before a
variant is loaded its files are checked against variant.toml (size, then sha256): a
corrupted or swapped file fails that variant with a clear message and the chain moves on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from runtime.backends.base import Backend, LoadOptions
from runtime.backends.registry import create_backend
from runtime.box import Box
from runtime.catalog import ModelPackage, Variant, file_problems
from runtime.errors import BackendLoadError, HeadframeError
from runtime.files import sha256_file
from runtime.profiles import Target
from runtime.selection import Selection
from runtime.selection.measurement import Measurement, MeasurementKey
from runtime.units import human_bytes

# measure(package) -> the measurements selection ranks by (runtime.loading.calibrator.Calibrator)
Measure = Callable[[ModelPackage], Mapping[MeasurementKey, Measurement]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadAttempt:
    """One try: ``variant`` id on ``backend``/``device``; ``error`` says why it failed."""

    variant: str
    backend: str
    device: str
    ok: bool
    error: str | None = None

    def describe(self) -> str:
        where = f"{self.variant} on {self.backend}/{self.device}"
        return f"{where}: loaded" if self.ok else f"{where}: {self.error}"


@dataclass
class LoadedModel:
    """A variant loaded and ready: the backend in use and how it got there."""

    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Selection
    attempts: list[LoadAttempt] = field(default_factory=list)


class FileCheckError(BackendLoadError):
    """A variant's file is missing, or its size or sha256 differs from variant.toml."""


class VariantLoader:
    """Selects (through the box) and loads variants for one box."""

    def __init__(self, box: Box, measure: Measure | None = None) -> None:
        self.box = box
        self.profile = box.profile
        self.report = box.report
        self.settings = box.settings
        self.measure = measure
        # (path, size, mtime_ns) -> sha256, so a reload does not re-hash unchanged files.
        self._digests: dict[tuple[str, int, int], str] = {}

    def select(
        self,
        package: ModelPackage,
        pin: str | None = None,
        *,
        unpinned: bool = False,
        governed: bool = True,
    ) -> Selection:
        """The box's choice for ``package``; ``pin`` forces a variant (a fleet trial, an
        operator's select in flight) over the box's own pins; ``unpinned`` leaves every pin
        out (the governor's rungs), ``governed=False`` the governor's override (the fleet's
        pick). Measures first (cache, else calibration within its budget) unless forced."""
        measurements = self.measure(package) if self.measure and pin is None else None
        return self.box.select(
            package.meta,
            [v.meta for v in package.variants],
            force=pin,
            measurements=measurements,
            unpinned=unpinned,
            governed=governed,
        )

    def __call__(self, package: ModelPackage, pin: str | None = None) -> LoadedModel:
        selection = self.select(package, pin)
        label = f"{package.application} {package.version}"
        if selection.chosen is None:
            details = "; ".join(f"{r.variant.variant}: {r.reason}" for r in selection.rejected)
            raise BackendLoadError(
                f"no variant of {label} can run here: {selection.reason}"
                + (f" ({details})" if details else "")
            )
        attempts: list[LoadAttempt] = []
        for choice in selection.ranked:
            variant = package.variant(choice.variant.variant)
            try:
                self.verify_files(variant)
            except FileCheckError as e:
                log.warning("%s: %s", label, e.message)
                attempts.append(
                    LoadAttempt(variant.id, choice.backend, choice.device, False, e.message)
                )
                continue
            for target in choice.targets:
                backend = self._try(variant, target, attempts, package.meta.task)
                if backend is not None:
                    log.info(
                        "%s: loaded %s on %s/%s after %d attempt(s)",
                        label,
                        variant.id,
                        target.backend,
                        target.device,
                        len(attempts),
                    )
                    return LoadedModel(package, variant, backend, selection, attempts)
        lines = "; ".join(a.describe() for a in attempts)
        raise BackendLoadError(f"could not load any variant of {label}: {lines}", attempts)

    def _try(
        self, variant: Variant, target: Target, attempts: list[LoadAttempt], task: str = "tensor"
    ) -> Backend | None:
        backend: Backend | None = None
        try:
            backend = create_backend(target.backend)
            backend.load(variant, replace(self.options_for(variant, target), task=task))
        except HeadframeError as e:
            error = e.message
        except Exception as e:  # a runtime's own exception type: record it, try the next
            error = f"{type(e).__name__}: {e}"
        else:
            attempts.append(LoadAttempt(variant.id, target.backend, target.device, True))
            return backend
        log.warning("%s on %s/%s failed: %s", variant.id, target.backend, target.device, error)
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.unload()
        attempts.append(LoadAttempt(variant.id, target.backend, target.device, False, error))
        return None

    def load_target(self, variant: Variant, target: Target, task: str = "tensor") -> Backend:
        """Verify ``variant``'s files and load it on ``target``: one calibration candidate.
        Raises what the check or the runtime raises; the caller unloads the backend."""
        self.verify_files(variant)
        backend = create_backend(target.backend)
        try:
            backend.load(variant, replace(self.options_for(variant, target), task=task))
        except BaseException:
            with contextlib.suppress(Exception):
                backend.unload()
            raise
        return backend

    def options_for(self, variant: Variant, target: Target) -> LoadOptions:
        """LoadOptions from the profile (threads, providers), settings (cache) and memory."""
        peak = variant.meta.peak_memory_bytes
        free = self.report.memory.available_bytes
        if free is not None and peak > free:
            log.warning(
                "%s needs about %s but only %s is free; loading anyway",
                variant.id,
                human_bytes(peak),
                human_bytes(free),
            )
        gpu_layers = 0
        if target.device.startswith("gpu"):
            vram = max((a.memory_bytes or 0 for a in self.report.accelerators_of("gpu")), default=0)
            # All layers when the variant fits the GPU's share; else llama.cpp keeps them on CPU.
            fits = vram == 0 or peak <= vram * self.profile.memory_budget_fraction
            gpu_layers = -1 if fits else 0
        return LoadOptions(
            device=target.device,
            intra_op_threads=self.profile.threads.intra_op,
            inter_op_threads=self.profile.threads.inter_op,
            cache_dir=str(self.settings.paths.cache_dir),
            providers=target.providers,
            gpu_layers=gpu_layers,
        )

    def verify_files(self, variant: Variant) -> None:
        """Check every file against variant.toml (``catalog.file_problems``, sha256
        included); FileCheckError says which and how."""
        for problem in file_problems(variant.path, variant.meta.files, self._sha256):
            why = {
                "path": "",
                "size": ": the file is truncated, corrupted or was replaced",
                "sha256": ": the file is corrupted or was replaced",
            }[problem.field]
            raise FileCheckError(f"{variant.path}: {problem.text}{why}")

    def _sha256(self, path: Path, st: os.stat_result) -> str:
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = sha256_file(path)
        return self._digests[key]
