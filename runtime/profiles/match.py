"""Matching a HardwareReport to a device profile: pure, with reasons.

``match`` takes the report and the profiles and returns the winner, with a reason for the
win and a why-not for every other profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.errors import ConfigError
from runtime.hardware.report import HardwareReport
from runtime.profiles.profile import DeviceProfile
from runtime.profiles.rules import RuleResult, evaluate


@dataclass(frozen=True)
class Candidate:
    """One profile as the match saw it: whether its rules held, and why (or why not)."""

    name: str
    matched: bool
    reasons: list[str] = field(default_factory=list)
    priority: int = 0


@dataclass(frozen=True)
class ProfileMatch:
    profile: DeviceProfile
    reasons: list[str]
    candidates: list[Candidate]
    fallback: bool = False  # True when no specific profile matched and the generic one won

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.profile.name,
            "description": self.profile.description,
            "source": str(self.profile.source) if self.profile.source else None,
            "fallback": self.fallback,
            "reasons": list(self.reasons),
            "candidates": [
                {"name": c.name, "matched": c.matched, "priority": c.priority, "reasons": c.reasons}
                for c in self.candidates
            ],
        }


def _rank(p: DeviceProfile) -> tuple[int, int, str]:
    """Sort key, best first: higher priority, then more specific rules, then name."""
    return (-p.priority, -p.match.specificity(), p.name)


def _beat(winner: DeviceProfile, loser: DeviceProfile) -> str:
    """Why ``winner`` ranks above ``loser``, in words."""
    if winner.priority != loser.priority:
        return f"higher priority ({winner.priority} > {loser.priority})"
    ws, ls = winner.match.specificity(), loser.match.specificity()
    if ws != ls:
        return f"tie at priority {winner.priority}; more specific rules ({ws} > {ls})"
    return (
        f"tie at priority {winner.priority} and {ws} rules; "
        f"{winner.name!r} sorts before {loser.name!r} by name"
    )


def match(report: HardwareReport, profiles: list[DeviceProfile]) -> ProfileMatch:
    """The best profile for ``report``. Pure. Raises ConfigError when not even a generic
    profile exists for the host's architecture."""
    results: dict[str, list[RuleResult]] = {p.name: evaluate(p.match, report) for p in profiles}
    matched = [p for p in profiles if all(r.ok for r in results[p.name])]
    specific = sorted((p for p in matched if p.generic_for_arch is None), key=_rank)
    arch = report.cpu.arch
    if specific:
        winner, fallback = specific[0], False
        reasons = [r.text for r in results[winner.name]]
        if len(specific) > 1:
            reasons.append(
                f"best of {len(specific)} matching profiles: over {specific[1].name!r} by "
                + _beat(winner, specific[1])
            )
    else:
        generics = sorted((p for p in profiles if p.generic_for_arch == arch), key=_rank)
        if not generics:
            names = ", ".join(p.name for p in profiles)
            raise ConfigError(
                f"no device profile matches this {arch} host and none has "
                f"generic_for_arch = {arch!r} (profiles: {names})"
            )
        winner, fallback = generics[0], True
        reasons = [
            f"no profile for a specific hardware class matches this host; falling back to "
            f"the generic profile for {arch}"
        ] + [r.text for r in results[winner.name]]
    reasons += [f"note: {n}" for n in winner.notes]
    return ProfileMatch(winner, reasons, _candidates(winner, profiles, results), fallback)


def _candidates(
    winner: DeviceProfile, profiles: list[DeviceProfile], results: dict[str, list[RuleResult]]
) -> list[Candidate]:
    out = []
    for p in sorted(profiles, key=_rank):
        rules = results[p.name]
        ok = all(r.ok for r in rules)
        if p is winner:
            why = ["chosen"] + [r.text for r in rules]
        elif not ok:
            why = [r.text for r in rules if not r.ok]
        elif p.generic_for_arch is not None and winner.generic_for_arch is None:
            why = [f"generic profile for {p.generic_for_arch}: used only when nothing else matches"]
        else:
            why = [r.text for r in rules] + [f"lost to {winner.name!r}: {_beat(winner, p)}"]
        out.append(Candidate(p.name, ok, why, p.priority))
    return out
