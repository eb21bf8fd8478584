"""Builds a FleetAgent from settings: the variant chooser (the box's selection on
metadata alone: runtime.box decides floor, pins and objective) and the trial loader.
Shared by the CLI and the daemon so both decide exactly alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runtime.box import Box, site_floors
from runtime.catalog import ModelPackage, PackageMeta, Store, VariantMeta
from runtime.config import Settings
from runtime.fleet.agent import Activated, Chooser, FleetAgent, Picker
from runtime.fleet.download import Progress
from runtime.fleet.pack_sync import PackHost
from runtime.fleet.trial import Loader
from runtime.fleet.tufclient import FleetError
from runtime.selection import Selection

__all__ = [
    "box_chooser_and_loader",
    "build_agent",
    "chooser_and_picker",
    "make_chooser",
    "make_picker",
    "rungs_to_keep",
    "site_floors",
]


def rungs_to_keep(settings: Settings) -> int:
    """How many lighter variants the fleet keeps beside its winner: ``[fleet] keep_rungs``
    when the governor is on (it steps down to them), else 0 (only the winner, as it
    serves). The daemon and the CLI both ask here."""
    if settings.fleet is None or not settings.governor.enabled:
        return 0
    return settings.fleet.keep_rungs


def make_chooser(
    box: Callable[[], Box], count: int = 2, bytes_factor: float = 1.5, rungs: int = 0
) -> Chooser:
    """Selection on metadata alone, asked of the box in force (``box()``: the daemon
    rebuilds it on SIGHUP), with its floor, operator pins and objective: the same
    decision the loader makes. Returns the candidates to download in rule order: the
    pinned one alone under a pin, else the shortlist (runtime.selection.ranking.shortlist) that
    the trial measures before the box keeps the winner, plus up to ``rungs`` qualifying
    variants lighter than every shortlisted one (the governor's memory order,
    runtime.governor.ladder), nearest first, for the governor to step down to."""
    from runtime.governor.ladder import lighter
    from runtime.selection.ranking import shortlist

    def choose(package: PackageMeta, variants: Sequence[VariantMeta]) -> tuple[list[str], str]:
        sel = box().select(package, variants, governed=False)  # not the pressure of now
        if sel.chosen is None:
            why = "; ".join(f"{r.variant.variant}: {r.reason}" for r in sel.rejected)
            return [], why or sel.reason or "no variants"
        if sel.pin is not None:
            return [sel.chosen.variant.variant], sel.reason
        ranked = [c.variant for c in sel.ranked]
        picked = shortlist(ranked, count, bytes_factor)
        below = lighter(ranked, picked, rungs)
        wanted = {v.variant for v in picked + below}
        return [v.variant for v in ranked if v.variant in wanted], sel.chosen.reason

    return choose


def make_picker(select: Callable[[ModelPackage], Selection], rungs: int = 0) -> Picker:
    """The variants to keep among the staged candidates, the winner first: ``select`` is
    the measuring loader's (runtime.loading.calibrator: measured on this box, cached for the load
    that follows). Beside the winner, up to ``rungs`` candidates lighter than it (the
    governor's memory order) that the selection still ranks as qualifying with a
    measurement of their own (at or above the floor here); one that failed its
    measurement, or was not measured, is not kept."""
    from runtime.governor.ladder import lighter

    def pick(package: ModelPackage) -> tuple[list[str], str]:
        sel = select(package)
        if sel.chosen is None:
            why = "; ".join(f"{r.variant.variant}: {r.reason}" for r in sel.rejected)
            return [], f"{sel.reason} ({why})" if why else sel.reason
        winner = sel.chosen.variant
        measured = [c.variant for c in sel.ranked[1:] if c.measured is not None]
        kept = [winner, *lighter(measured, [winner], rungs)]
        return [v.variant for v in kept], sel.reason

    return pick


def chooser_and_picker(
    settings: Settings, box: Callable[[], Box], select: Callable[[ModelPackage], Selection]
) -> tuple[Chooser, Picker]:
    """The fleet's chooser (what to download: the shortlist, plus the governor's rungs)
    and picker (what to keep: the measured winner and its rungs), by ``[fleet]``'s
    counts; ``box()`` the box in force, ``select`` the measuring loader's choice with the
    governor's override left out (the fleet picks for no pressure of the moment)."""
    fleet = settings.fleet
    count, factor = (fleet.candidates, fleet.candidate_bytes_factor) if fleet else (2, 1.5)
    rungs = rungs_to_keep(settings)
    return make_chooser(box, count, factor, rungs), make_picker(select, rungs)


def box_chooser_and_loader(settings: Settings) -> tuple[Chooser, Loader, Picker]:
    """Build the box once (probe, profile, pins) and close over it (the CLI's path; the
    daemon passes its own box, loader and picker)."""
    from runtime.box import build_box
    from runtime.loading.calibrator import measuring_loader

    box = build_box(settings)
    loader = measuring_loader(box)[0]
    chooser, picker = chooser_and_picker(
        settings, lambda: box, lambda package: loader.select(package, governed=False)
    )
    return chooser, loader, picker


def build_agent(
    settings: Settings,
    *,
    on_activated: Activated | None = None,
    progress: Progress | None = None,
    with_backends: bool = True,
    chooser: Chooser | None = None,
    loader: Loader | None = None,
    picker: Picker | None = None,
    lock_wait_s: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
    pack_host: PackHost | None = None,
) -> FleetAgent:
    """The agent the settings describe; ``with_backends=False`` for status and rollback,
    which need neither the hardware probe nor a backend. ``lock_wait_s`` and
    ``on_lock_wait``: see FleetAgent (the CLI waits for the daemon; the daemon never).
    ``pack_host``: the daemon's (runtime.fleet.pack_host.LoopPackHost); with backends and
    none given, the CLI's ``LocalPackHost``."""
    if settings.fleet is None:
        raise FleetError("fleet updates are off: add a [fleet] section to the settings")
    if with_backends and (chooser is None or loader is None):
        chooser, loader, picker = box_chooser_and_loader(settings)
    if with_backends and pack_host is None:
        from runtime.fleet.pack_host import LocalPackHost

        pack_host = LocalPackHost(settings, Store(settings.paths.store))
    return FleetAgent(
        settings.fleet,
        Store(settings.paths.store),
        settings.paths.state_dir,
        chooser=chooser,
        loader=loader,
        picker=picker,
        floors=site_floors(settings),
        applications=[a.name for a in settings.applications],
        on_activated=on_activated,
        progress=progress,
        lock_wait_s=lock_wait_s,
        on_lock_wait=on_lock_wait,
        pack_host=pack_host,
    )
