"""Loading one variant on one (backend, device) target: the step the loader's fallback
chain and the calibrator's measurements share.

``TargetLoader(box)`` checks a variant's files against variant.toml (size, then sha256,
remembered by size and mtime so a reload does not hash unchanged files again), builds the
``LoadOptions`` from the profile (threads, providers), the settings (cache, embedding
limits) and the memory at hand, and loads the backend. BLOCKING: runs on the loader's or
the calibrator's thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import replace
from pathlib import Path

from runtime.backend_table import task_problem
from runtime.backends.base import Backend, LoadOptions
from runtime.backends.registry import create_backend
from runtime.box import Box
from runtime.catalog import Variant, file_problems
from runtime.errors import BackendLoadError
from runtime.files import sha256_file
from runtime.profiles import Target
from runtime.units import human_bytes

log = logging.getLogger(__name__)


class FileCheckError(BackendLoadError):
    """A variant's file is missing, or its size or sha256 differs from variant.toml."""


class TargetLoader:
    """Loads one variant on one target for ``box`` (its profile, report and settings)."""

    def __init__(self, box: Box) -> None:
        self.profile = box.profile
        self.report = box.report
        self.settings = box.settings
        # (path, size, mtime_ns) -> sha256, so a reload does not re-hash unchanged files.
        self._digests: dict[tuple[str, int, int], str] = {}

    def load_target(self, variant: Variant, target: Target, task: str = "tensor") -> Backend:
        """Verify ``variant``'s files and load it on ``target``: one calibration candidate,
        or one step of the fallback chain. Raises what the check or the runtime raises; the
        caller unloads the backend."""
        if (problem := task_problem(target.backend, task)) is not None:
            raise BackendLoadError(f"{variant.id} on {target.backend}/{target.device}: {problem}")
        self.verify_files(variant)
        return self.load_verified(variant, target, task)

    def load_verified(self, variant: Variant, target: Target, task: str = "tensor") -> Backend:
        """Load ``variant`` (files checked already) on ``target``; a backend that fails to
        load is unloaded before the error is raised."""
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
            embedding=self.settings.embeddings,
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
