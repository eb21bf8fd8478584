"""The decision in two pure steps, so the static rules run once per decision:

1. ``screen``: the static rules on every variant (format and targets, precision, memory
   budget, accuracy floor by the build-time figures), nothing measured yet;
2. the caller measures the survivors (``Screened.candidates``; runtime.loading.calibrator:
   cached, else measured within the budget), and
3. ``rank``: the measurements applied (a failed or too slow target dropped, the quality
   measured here in place of the build-time figure), the objective's order, the pin.

``select`` is both steps at once, for a caller that has its measurements in hand (or none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtime.catalog import PackageMeta, VariantMeta
from runtime.hardware.report import HardwareReport
from runtime.profiles import DeviceProfile, Target
from runtime.selection import ranking
from runtime.selection.decide import (
    Choice,
    Policy,
    Rejection,
    Resources,
    Selection,
    rank_key,
    usable_targets,
)
from runtime.selection.measurement import Measurement, MeasurementKey
from runtime.units import human_bytes, percent_bp


@dataclass(frozen=True)
class Screen:
    """The static rules' verdict on one variant. ``target_problem``: no target can run it
    (then measurements do not apply); ``problems``: precision and memory; ``accuracy``:
    the floor against the build-time figure, which a quality measured here replaces."""

    variant: VariantMeta
    targets: list[Target]
    skipped: list[str]
    target_problem: str | None
    problems: list[str]
    accuracy: str | None

    @property
    def passes(self) -> bool:
        return self.target_problem is None and not self.problems and self.accuracy is None


@dataclass(frozen=True)
class Screened:
    """Every variant of a package screened under one policy, before any measurement."""

    package: PackageMeta
    variants: Sequence[VariantMeta]
    profile: DeviceProfile
    policy: Policy
    floor: int
    budget: int
    screens: list[Screen]

    def candidates(self, pin: str | None = None) -> list[tuple[VariantMeta, Target]]:
        """What to measure: every (variant, target) that passes, in the static rule's
        order; only the pinned variant's under ``pin``."""
        passing = sorted((s for s in self.screens if s.passes), key=lambda s: rank_key(s.variant))
        return [
            (s.variant, t)
            for s in passing
            if pin is None or s.variant.variant == pin
            for t in s.targets
        ]


def screen(
    package: PackageMeta,
    variants: Sequence[VariantMeta],
    profile: DeviceProfile,
    report: HardwareReport,
    resources: Resources,
    policy: Policy | None = None,
) -> Screened:
    """The static rules on every variant. Pure."""
    policy = policy or Policy()
    floor = max(package.accuracy_floor_bp, policy.accuracy_floor_bp or 0)
    floor_src = (
        "site policy" if (policy.accuracy_floor_bp or 0) > package.accuracy_floor_bp else "package"
    )
    budget = int(resources.memory_bytes * profile.memory_budget_fraction)
    budget_text = (
        f"the budget {human_bytes(budget)} ({profile.memory_budget_fraction:.0%} of "
        f"{human_bytes(resources.memory_bytes)} {resources.source})"
    )
    screens = []
    for v in variants:
        targets: list[Target] = []
        skipped: list[str] = []
        problem = None
        if v.format not in profile.formats:
            allowed = ", ".join(profile.formats)
            problem = f"format {v.format} is not allowed by profile {profile.name} ({allowed})"
        else:
            targets, skipped, problem = usable_targets(v, profile, report, package.task)
        problems = []
        if v.precision not in profile.precisions:
            allowed = ", ".join(profile.precisions)
            problems.append(
                f"precision {v.precision} is not allowed by profile {profile.name} ({allowed})"
            )
        if v.peak_memory_bytes > budget:
            problems.append(f"peak memory {human_bytes(v.peak_memory_bytes)} exceeds {budget_text}")
        accuracy = None
        if floor > 0 and v.accuracy_bp is None:
            accuracy = (
                f"accuracy is unknown, and the {floor_src} floor {percent_bp(floor)} "
                "needs a measured one"
            )
        elif v.accuracy_bp is not None and v.accuracy_bp < floor:
            accuracy = (
                f"accuracy {percent_bp(v.accuracy_bp)} is below the {floor_src} floor "
                f"{percent_bp(floor)}"
            )
        screens.append(Screen(v, targets, skipped, problem, problems, accuracy))
    return Screened(package, variants, profile, policy, floor, budget, screens)


def rank(
    screened: Screened, measurements: Mapping[MeasurementKey, Measurement] | None = None
) -> Selection:
    """The decision from ``screened`` and what was measured here. Pure."""
    measurements = measurements or {}
    package, policy, floor = screened.package, screened.policy, screened.floor
    qualified: list[ranking.Item] = []
    skipped: dict[str, list[str]] = {}
    rejected: list[Rejection] = []
    for s in screened.screens:
        v = s.variant
        reasons: list[str] = []
        targets = s.targets
        best: Measurement | None = None
        skipped[v.variant] = list(s.skipped)
        if s.target_problem:
            reasons.append(s.target_problem)
        elif measurements:
            targets, best, dropped = ranking.measured_targets(
                v, targets, measurements, floor, package.latency_budget_us
            )
            skipped[v.variant] += dropped
            if not targets:
                reasons.append("measured on this box: " + "; ".join(dropped))
        reasons += s.problems
        # The quality measured here replaces the build-time figure for the floor.
        measured_here = any(
            (m.variant == v.variant and m.ok and m.quality_bp is not None)
            for m in measurements.values()
        )
        if s.accuracy is not None and not measured_here:
            reasons.append(s.accuracy)
        if reasons:
            rejected.append(Rejection(v, "; ".join(reasons)))
        else:
            qualified.append((v, targets, best))

    qualified, why = ranking.order(qualified, policy.objective, policy.factor, rank_key)
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
            policy.pin, screened.variants, ranked, rejected, policy.pin_text
        )
    chosen = ranked[0] if ranked else None
    if chosen is not None:
        reason = reason or chosen.reason
    elif not reason:
        n, profile = len(screened.variants), screened.profile.name
        reason = f"none of the {n} variants qualifies on profile {profile}"
    rejected.sort(key=lambda r: rank_key(r.variant))
    return Selection(
        application=package.application,
        version=package.version,
        profile=screened.profile.name,
        chosen=chosen,
        ranked=ranked,
        rejected=rejected,
        accuracy_floor_bp=floor,
        budget_bytes=screened.budget,
        reason=reason,
        pin=policy.pin,
        objective=policy.objective if measurements else "smallest",
        measurements=sorted(measurements.values(), key=lambda m: m.key),
    )


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
    """Decide which variant of ``package`` to run here (``screen`` then ``rank``). Pure;
    see runtime.selection.decide's docstring for the rule."""
    return rank(screen(package, variants, profile, report, resources, policy), measurements)


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
    acc = percent_bp(v.accuracy_bp) if v.accuracy_bp is not None else "unmeasured"
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
