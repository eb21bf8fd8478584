"""Variant selection: which variant of a package this box should run, and why.

PURE: it reads metadata, the device profile and the hardware report, never files or
the network, so the fleet agent can decide before it downloads anything. The rule:
keep the variants whose format has an installed backend that the profile allows on a
device that exists, whose precision the profile allows, whose peak memory fits the
budget and whose accuracy meets the floor; take the smallest by bytes, ties to the more
accurate, then the faster. Every variant turned down gets a plain-English reason with
the numbers in it.

With ``measurements`` (what runtime.loading.calibrator measured on this box) the quality measured
here replaces the build-time figure for the floor, a failed or too slow target is
dropped, and the objective ranks the measured variants by their p50 (runtime.selection.ranking);
variants not measured rank after them by the rule above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.backend_table import BACKENDS
from runtime.backends.registry import device_class, device_problem, runtime_problem
from runtime.catalog import PackageMeta, VariantMeta
from runtime.hardware.report import HardwareReport
from runtime.profiles import DeviceProfile, Target
from runtime.selection import ranking
from runtime.selection.measurement import Measurement, MeasurementKey
from runtime.units import human_bytes, percent_bp


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


def _usable_targets(
    variant: VariantMeta, profile: DeviceProfile, report: HardwareReport
) -> tuple[list[Target], list[str], str | None]:
    """The profile's targets that open this format and can run here, the ones skipped
    (with why), and why none can run it when that is so."""
    fitting = [t for t in profile.targets if variant.format in BACKENDS[t.backend].formats]
    if not fitting:
        listed = ", ".join(f"{t.backend}/{t.device}" for t in profile.targets)
        why = f"profile {profile.name} has no backend for format {variant.format} ({listed})"
        return [], [], why
    usable: list[Target] = []
    problems: list[str] = []
    for t in fitting:
        problem = runtime_problem(t.backend, report) or device_problem(t, variant, report)
        if problem is None:
            usable.append(t)
        else:
            problems.append(f"{t.backend}/{t.device}: {problem}")
    if usable:
        return usable, problems, None
    return [], problems, "no backend can run it here (" + "; ".join(problems) + ")"


def _rank_key(v: VariantMeta) -> tuple[int, int, int, str]:
    # Smallest first; ties to the more accurate (unknown last), then the faster.
    acc = v.accuracy_bp if v.accuracy_bp is not None else -1
    lat = v.latency_us if v.latency_us is not None else 2**62
    return (v.bytes, -acc, lat, v.variant)


def select(
    package: PackageMeta,
    variants: Sequence[VariantMeta],
    profile: DeviceProfile,
    report: HardwareReport,
    resources: Resources,
    policy: Policy | None = None,
    *,
    measurements: Mapping[MeasurementKey, Measurement] | None = None,
) -> Selection:
    """Decide which variant of ``package`` to run here. Pure; see the module docstring."""
    policy = policy or Policy()
    measurements = measurements or {}
    floor = max(package.accuracy_floor_bp, policy.accuracy_floor_bp or 0)
    floor_src = (
        "site policy" if (policy.accuracy_floor_bp or 0) > package.accuracy_floor_bp else "package"
    )
    budget = int(resources.memory_bytes * profile.memory_budget_fraction)
    budget_text = (
        f"the budget {human_bytes(budget)} ({profile.memory_budget_fraction:.0%} of "
        f"{human_bytes(resources.memory_bytes)} {resources.source})"
    )

    qualified: list[ranking.Item] = []
    skipped: dict[str, list[str]] = {}
    rejected: list[Rejection] = []
    for v in variants:
        reasons: list[str] = []
        targets: list[Target] = []
        best: Measurement | None = None
        if v.format not in profile.formats:
            allowed = ", ".join(profile.formats)
            reasons.append(
                f"format {v.format} is not allowed by profile {profile.name} ({allowed})"
            )
        else:
            targets, skipped[v.variant], problem = _usable_targets(v, profile, report)
            if problem:
                reasons.append(problem)
            elif measurements:
                targets, best, dropped = ranking.measured_targets(
                    v, targets, measurements, floor, package.latency_budget_us
                )
                skipped[v.variant] += dropped
                if not targets:
                    reasons.append("measured on this box: " + "; ".join(dropped))
        measured_here = any(
            (m.variant == v.variant and m.ok and m.quality_bp is not None)
            for m in measurements.values()
        )
        if v.precision not in profile.precisions:
            allowed = ", ".join(profile.precisions)
            reasons.append(
                f"precision {v.precision} is not allowed by profile {profile.name} ({allowed})"
            )
        if v.peak_memory_bytes > budget:
            reasons.append(f"peak memory {human_bytes(v.peak_memory_bytes)} exceeds {budget_text}")
        if measured_here:
            pass  # the quality measured here replaced the build-time figure (above)
        elif floor > 0 and v.accuracy_bp is None:
            reasons.append(
                f"accuracy is unknown, and the {floor_src} floor {percent_bp(floor)} "
                "needs a measured one"
            )
        elif v.accuracy_bp is not None and v.accuracy_bp < floor:
            reasons.append(
                f"accuracy {percent_bp(v.accuracy_bp)} is below the {floor_src} floor "
                f"{percent_bp(floor)}"
            )
        if reasons:
            rejected.append(Rejection(v, "; ".join(reasons)))
        else:
            qualified.append((v, targets, best))

    qualified, why = ranking.order(qualified, policy.objective, policy.factor, _rank_key)
    ranked = [
        Choice(
            v,
            t,
            _choice_reason(v, t, m, i, len(qualified), floor, skipped.get(v.variant, []), why),
            m,
        )
        for i, (v, t, m) in enumerate(qualified)
    ]
    reason = ""
    if policy.pin is not None:
        ranked, rejected, reason = _apply_pin(
            policy.pin, variants, ranked, rejected, policy.pin_text
        )
    chosen = ranked[0] if ranked else None
    if chosen is not None:
        reason = reason or chosen.reason
    elif not reason:
        reason = f"none of the {len(variants)} variants qualifies on profile {profile.name}"
    rejected.sort(key=lambda r: _rank_key(r.variant))
    return Selection(
        application=package.application,
        version=package.version,
        profile=profile.name,
        chosen=chosen,
        ranked=ranked,
        rejected=rejected,
        accuracy_floor_bp=floor,
        budget_bytes=budget,
        reason=reason,
        pin=policy.pin,
        objective=policy.objective if measurements else "smallest",
        measurements=sorted(measurements.values(), key=lambda m: m.key),
    )


def _choice_reason(
    v: VariantMeta,
    targets: list[Target],
    m: Measurement | None,
    rank: int,
    of: int,
    floor: int,
    skipped: list[str],
    why: str,
) -> str:
    where = f"{targets[0].backend}/{targets[0].device}"
    acc = percent_bp(v.accuracy_bp, "unmeasured")
    # Say why an earlier target was passed over ("why is my GPU box on CPU?"), for a
    # fallback too: it is what serves when the choice cannot load.
    passed_over = "".join(f"; skipped {s}" for s in skipped)
    if why:  # measurements decided: every reason names the numbers measured here
        said = ranking.measured_text(v, m) if m else f"{v.variant}: not measured (budget)"
        size = f"{human_bytes(v.bytes)}, floor {percent_bp(floor)}"
        if rank == 0:
            return f"{why}: {said} ({size}){passed_over}"
        return f"qualifies, fallback {rank} of {of - 1}: {said} ({size}){passed_over}"
    if rank == 0:
        return (
            f"smallest of {of} qualifying variant{'s' if of != 1 else ''} "
            f"({human_bytes(v.bytes)}, accuracy {acc}, floor {percent_bp(floor)}) on {where}"
            f"{passed_over}"
        )
    return (
        f"qualifies, fallback {rank} of {of - 1} ({human_bytes(v.bytes)}, accuracy {acc})"
        f"{passed_over}"
    )


def _apply_pin(
    pin: str,
    variants: Sequence[VariantMeta],
    ranked: list[Choice],
    rejected: list[Rejection],
    pin_text: str = "pinned by site policy",
) -> tuple[list[Choice], list[Rejection], str]:
    """Keep only the pinned variant; the others that qualified are rejected because of the pin."""
    pinned = [c for c in ranked if c.variant.variant == pin]
    others = [
        Rejection(c.variant, f"qualifies, but site policy pins {pin}")
        for c in ranked
        if c not in pinned
    ]
    if pinned:
        choice = pinned[0]
        size = human_bytes(choice.variant.bytes)
        why = f"{pin_text} ({size}) on {choice.backend}/{choice.device}"
        return (
            [Choice(choice.variant, choice.targets, why, choice.measured)],
            rejected + others,
            why,
        )
    if not any(v.variant == pin for v in variants):
        known = ", ".join(v.variant for v in variants)
        return [], rejected + others, f"the pinned variant {pin} is not in this package ({known})"
    own = next(r for r in rejected if r.variant.variant == pin)
    return [], rejected + others, f"the pinned variant {pin} is rejected: {own.reason}"
