"""Builds a FleetAgent from settings: the variant chooser (the box's selection on
metadata alone: runtime.box decides floor, pins and objective) and the trial loader.
Shared by the CLI and the daemon so both decide exactly alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from runtime.box import Box, site_floors
from runtime.catalog import PackageMeta, Store, VariantMeta
from runtime.config import Settings
from runtime.fleet.agent import Activated, Chooser, FleetAgent
from runtime.fleet.download import Progress
from runtime.fleet.state import FleetState
from runtime.fleet.trial import Loader
from runtime.fleet.tufclient import FleetError

__all__ = ["box_chooser_and_loader", "build_agent", "make_chooser", "read_state", "site_floors"]


def make_chooser(box: Callable[[], Box]) -> Chooser:
    """Selection on metadata alone, asked of the box in force (``box()``: the daemon
    rebuilds it on SIGHUP), with its floor, operator pins and objective: the same
    decision the loader makes, so the variant downloaded is the one that loads."""

    def choose(package: PackageMeta, variants: Sequence[VariantMeta]) -> tuple[str | None, str]:
        sel = box().select(package, variants)
        if sel.chosen is None:
            why = "; ".join(f"{r.variant.variant}: {r.reason}" for r in sel.rejected)
            return None, why or "no variants"
        return sel.chosen.variant.variant, sel.chosen.reason

    return choose


def box_chooser_and_loader(settings: Settings) -> tuple[Chooser, Loader]:
    """Probe the hardware once, match the profile, and close over them (the CLI's path;
    the daemon passes the report and profile it already has to ``make_chooser``)."""
    from runtime.box import build_box
    from runtime.loader import VariantLoader

    box = build_box(settings)
    return make_chooser(lambda: box), VariantLoader(box)


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
