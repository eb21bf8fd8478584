"""Variant selection: which variant of a package this box should run, and why.

PURE: it reads metadata, the device profile and the hardware report, never files or
the network, so the fleet agent can decide before it downloads anything. The rule:
keep the variants whose format has an installed backend that the profile allows on a
device that exists and that serves the package's task (backend_table ``tasks``), whose
precision the profile allows, whose peak memory fits the budget and whose accuracy
meets the floor; take the smallest by bytes, ties to the more
accurate, then the faster. Every variant turned down gets a plain-English reason with
the numbers in it.

With ``measurements`` (what runtime.loading.calibrator measured on this box) the quality measured
here replaces the build-time figure for the floor, a failed or too slow target is
dropped, and the objective ranks the measured variants by their p50 (runtime.selection.ranking);
variants not measured rank after them by the rule above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.backend_table import BACKENDS, task_problem
from runtime.backends.registry import device_class, device_problem, runtime_problem
from runtime.catalog import VariantMeta
from runtime.hardware.report import HardwareReport
from runtime.profiles import DeviceProfile, Target
from runtime.selection.measurement import Measurement


@dataclass(frozen=True)
class Resources:
    """The memory the budget is a fraction of: RAM, VRAM, or an operator's override.

    The budget is ``profile.memory_budget_fraction * memory_bytes``; ``source`` names
    where ``memory_bytes`` came from, for the reasons ("RAM", "VRAM", "--memory-bytes").
    """

    memory_bytes: int
    source: str = "RAM"


@dataclass(frozen=True)
class Policy:
    """Site policy: a floor that can only raise the package's, an optional pin, and the
    objective that ranks measured variants (``balanced``: within ``factor`` of the fastest)."""

    accuracy_floor_bp: int | None = None
    pin: str | None = None
    objective: str = "balanced"
    factor: float = 1.25
    pin_text: str = "pinned by site policy"  # who pinned, for the reason (runtime.box)


@dataclass(frozen=True)
class Choice:
    """A variant that qualifies, with the (backend, device) targets to try in order."""

    variant: VariantMeta
    targets: list[Target]
    reason: str
    measured: Measurement | None = None

    @property
    def backend(self) -> str:
        return self.targets[0].backend

    @property
    def device(self) -> str:
        return self.targets[0].device

    def to_dict(self) -> dict[str, Any]:
        v = self.variant
        return {
            "variant": v.variant,
            "format": v.format,
            "precision": v.precision,
            "bytes": v.bytes,
            "accuracy_bp": v.accuracy_bp,
            "backend": self.backend,
            "device": self.device,
            "peak_memory_bytes": v.peak_memory_bytes,
            "latency_us": v.latency_us,
            "targets": [{"backend": t.backend, "device": t.device} for t in self.targets],
            "reason": self.reason,
            "measured": self.measured.to_dict() if self.measured else None,
        }


@dataclass(frozen=True)
class Rejection:
    variant: VariantMeta
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant.variant, "bytes": self.variant.bytes, "reason": self.reason}


@dataclass(frozen=True)
class Selection:
    """The decision: ``chosen`` (None when nothing qualifies), the ranked qualifying
    variants (chosen first; the loader falls back along them) and every rejection."""

    application: str
    version: str
    profile: str
    chosen: Choice | None
    ranked: list[Choice]
    rejected: list[Rejection]
    accuracy_floor_bp: int
    budget_bytes: int
    reason: str
    pin: str | None = None
    notes: list[str] = field(default_factory=list)
    objective: str = "smallest"
    measurements: list[Measurement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON that ``headframe models select --json`` prints."""
        return {
            "application": self.application,
            "version": self.version,
            "profile": self.profile,
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "reason": self.reason,
            "rejected": [r.to_dict() for r in self.rejected],
            "ranked": [c.to_dict() for c in self.ranked],
            "accuracy_floor_bp": self.accuracy_floor_bp,
            "memory_budget_bytes": self.budget_bytes,
            "pin": self.pin,
            "objective": self.objective,
            "measurements": [m.to_dict() for m in self.measurements],
        }


def resources_for(
    profile: DeviceProfile, report: HardwareReport, override_bytes: int | None = None
) -> Resources:
    """The memory the profile's budget applies to: the override, else RAM or the largest
    GPU's memory per ``profile.memory_source`` (RAM when no GPU says how much it has)."""
    if override_bytes is not None:
        return Resources(override_bytes, "--memory-bytes")
    if profile.memory_source == "vram":
        sizes = [a.memory_bytes for a in report.accelerators_of("gpu") if a.memory_bytes]
        if sizes:
            return Resources(max(sizes), "VRAM")
        return Resources(report.memory.total_bytes, "RAM; no GPU memory reported")
    return Resources(report.memory.total_bytes, "RAM")


def runtimes_selection_reads(profile: DeviceProfile) -> set[str]:
    """The runtimes whose own device lists ``select`` reads for ``profile``: those of its
    GPU and NPU targets (onnxruntime's providers, OpenVINO's devices, llama.cpp's offload).
    A CPU or auto target needs the runtime's presence only (every OpenVINO wheel ships
    its CPU plugin), so a box that runs on its CPU need not import a runtime it does not
    load (runtime.hardware.probe ``runtimes``, ``query_runtimes``)."""
    return {
        BACKENDS[t.backend].runtime
        for t in profile.targets
        if device_class(t.device) in ("gpu", "npu")
    }


def usable_targets(
    variant: VariantMeta, profile: DeviceProfile, report: HardwareReport, task: str
) -> tuple[list[Target], list[str], str | None]:
    """The profile's targets that open this format, serve the package's ``task`` and can
    run here, the ones skipped (with why), and why none can run it when that is so."""
    fitting = [t for t in profile.targets if variant.format in BACKENDS[t.backend].formats]
    if not fitting:
        listed = ", ".join(f"{t.backend}/{t.device}" for t in profile.targets)
        why = f"profile {profile.name} has no backend for format {variant.format} ({listed})"
        return [], [], why
    usable: list[Target] = []
    problems: list[str] = []
    for t in fitting:
        problem = (
            task_problem(t.backend, task)
            or runtime_problem(t.backend, report)
            or device_problem(t, variant, report)
        )
        if problem is None:
            usable.append(t)
        else:
            problems.append(f"{t.backend}/{t.device}: {problem}")
    if usable:
        return usable, problems, None
    return [], problems, "no backend can run it here (" + "; ".join(problems) + ")"


def rank_key(v: VariantMeta) -> tuple[int, int, int, str]:
    """The static rule's order: smallest first; ties to the more accurate (unknown last),
    then the faster."""
    acc = v.accuracy_bp if v.accuracy_bp is not None else -1
    lat = v.latency_us if v.latency_us is not None else 2**62
    return (v.bytes, -acc, lat, v.variant)
