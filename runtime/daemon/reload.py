"""What SIGHUP rebuilds, and how the daemon brings what serves in line afterwards.

``Assembly`` holds the parts that depend on the settings and the probe (the settings, the
store, the box policy and its description, the loader and its calibrator), built by
``assemble`` and replaced as one on SIGHUP: nothing is completed by assignment, and a
reader sees the old parts or the new ones, never half of each. ``reread`` is the settings
half of SIGHUP (the API tokens and readiness rule go live, the rest is logged as waiting
for a restart). What runs then changes only through the change path
(runtime.service.changes): ``ChangePath.reselect`` after SIGHUP and after a store change,
``ChangePath.start`` at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.api.auth import Tokens
from runtime.api.live_settings import apply_live_api
from runtime.box import Box, build_box, pins_path
from runtime.box.description import BoxDescription
from runtime.catalog import Store
from runtime.config import Settings, load_settings
from runtime.errors import HeadframeError
from runtime.loading.calibrator import CACHE_FILE, CalibrationCache, Calibrator
from runtime.loading.loader import VariantLoader
from runtime.loading.targets import TargetLoader
from runtime.service import InferenceService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assembly:
    """The parts SIGHUP rebuilds. ``loader`` measures before it chooses
    (``calibrator``: cached in the state dir; what it measured shows on /status)."""

    settings: Settings
    store: Store
    box: Box
    description: BoxDescription
    loader: VariantLoader
    calibrator: Calibrator

    def applications(self) -> list[str]:
        """The configured applications, else every application in the store."""
        configured = [a.name for a in self.settings.applications]
        return configured or self.store.applications()


def build_loading(box: Box) -> tuple[VariantLoader, Calibrator]:
    """The loader and the calibrator, each given what it needs: both load one target
    through the same ``TargetLoader``; the loader measures through the calibrator."""
    targets = TargetLoader(box)
    cache = CalibrationCache(Path(box.settings.paths.state_dir) / CACHE_FILE)
    calibrator = Calibrator(box, targets.load_target, cache)
    return VariantLoader(box, targets, calibrator.measurements), calibrator


async def assemble(settings: Settings, hostname: str, previous: Assembly | None) -> Assembly:
    """Probe, match the profile, read the pins (off the loop), and build the loader. On
    SIGHUP (``previous``) the pins are read again where they were and the governor's
    steps carried over (the pressure has not gone away with the old box)."""
    pins = previous.box.pins if previous is not None else None
    if pins is not None and pins.path != pins_path(settings):
        pins = None  # the state directory moved: read the pins kept there
    if pins is not None:
        await asyncio.to_thread(pins.reload)
    box = await asyncio.to_thread(build_box, settings, pins=pins)
    if previous is not None:
        box.carry_overrides(previous.box)
    reasons = box.match.reasons if box.match else []
    log.info("device profile %s: %s", box.profile.name, "; ".join(reasons))
    loader, calibrator = build_loading(box)
    return Assembly(
        settings,
        Store(settings.paths.store),
        box,
        BoxDescription(hostname, box.report, box.match),
        loader,
        calibrator,
    )


def reread(
    config_file: Path | None,
    overrides: Mapping[str, Any],
    running: Settings,
    tokens: Tokens,
    service: InferenceService,
) -> Settings | None:
    """The settings again (SIGHUP), with what the running API takes at once applied (the
    tokens, the readiness rule); None, logged, when they are invalid: the running ones
    stay. Each application's queue and batching take effect at its next load."""
    try:
        settings = load_settings(config_file, overrides=dict(overrides) or None)
    except HeadframeError as e:
        log.error("reload refused, keeping the running settings: %s", e.message)
        return None
    api = apply_live_api(settings.api, running.api, tokens, service)
    settings = settings.model_copy(update={"api": api})
    for app_settings in settings.applications:
        service.configure(app_settings)
    return settings
