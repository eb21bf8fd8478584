"""Builds a FleetAgent from settings: the variant chooser (selection on metadata alone,
for this box's profile and hardware) and the trial loader. Shared by the CLI and the
daemon so both decide exactly alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runtime.catalog import PackageMeta, Store, VariantMeta
from runtime.config import Settings
from runtime.fleet.agent import Activated, Chooser, FleetAgent
from runtime.fleet.download import Progress
from runtime.fleet.state import FleetState
from runtime.fleet.trial import Loader
from runtime.fleet.tufclient import FleetError


def site_floors(settings: Settings) -> dict[str, int]:
    return {a.name: a.accuracy_floor_bp for a in settings.applications if a.accuracy_floor_bp}


def make_chooser(settings: Settings, profile: Any, report: Any) -> Chooser:
    """Selection on metadata alone for this box (``profile``, ``report``): the same rule
    and site policy the loader applies, so the variant downloaded is the one that loads."""
    from runtime.selection import Policy, resources_for, select

    resources = resources_for(profile, report, settings.memory_bytes)
    pins = {a.name: a.variant for a in settings.applications}
    floors = site_floors(settings)

    def choose(package: PackageMeta, variants: Sequence[VariantMeta]) -> tuple[str | None, str]:
        policy = Policy(
            accuracy_floor_bp=floors.get(package.application),
            pin=pins.get(package.application),
        )
        sel = select(package, variants, profile, report, resources, policy)
        if sel.chosen is None:
            why = "; ".join(f"{r.variant.variant}: {r.reason}" for r in sel.rejected)
            return None, why or "no variants"
        return sel.chosen.variant.variant, sel.chosen.reason

    return choose


def box_chooser_and_loader(settings: Settings) -> tuple[Chooser, Loader]:
    """Probe the hardware once, match the profile, and close over them (the CLI's path;
    the daemon passes the report and profile it already has to ``make_chooser``)."""
    from runtime.hardware import probe
    from runtime.loader import VariantLoader
    from runtime.profiles import default_profiles_dir, load_profiles, match, profile_by_name

    report = probe()
    profiles = load_profiles(default_profiles_dir(settings))
    if settings.profile:
        profile = profile_by_name(profiles, settings.profile)
    else:
        profile = match(report, profiles).profile
    return make_chooser(settings, profile, report), VariantLoader(profile, report, settings)


def build_agent(
    settings: Settings,
    *,
    on_activated: Activated | None = None,
    progress: Progress | None = None,
    with_backends: bool = True,
    chooser: Chooser | None = None,
    loader: Loader | None = None,
    lock_wait_s: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
) -> FleetAgent:
    """The agent the settings describe; ``with_backends=False`` for status and rollback,
    which need neither the hardware probe nor a backend. ``lock_wait_s`` and
    ``on_lock_wait``: see FleetAgent (the CLI waits for the daemon; the daemon never)."""
    if settings.fleet is None:
        raise FleetError("fleet updates are off: add a [fleet] section to the settings")
    if with_backends and (chooser is None or loader is None):
        chooser, loader = box_chooser_and_loader(settings)
    return FleetAgent(
        settings.fleet,
        Store(settings.paths.store),
        settings.paths.state_dir,
        chooser=chooser,
        loader=loader,
        floors=site_floors(settings),
        applications=[a.name for a in settings.applications],
        on_activated=on_activated,
        progress=progress,
        lock_wait_s=lock_wait_s,
        on_lock_wait=on_lock_wait,
    )


def read_state(settings: Settings) -> FleetState:
    return FleetState(Path(settings.paths.state_dir) / "fleet" / "state.json")
