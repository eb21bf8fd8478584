"""The daemon's one call: ``start_governor(parts)`` builds the governor on the daemon's
parts, registers its /status section and /metrics source, its MQTT events (when the
bridge runs) and the fleet hand-over, and starts its task; ``None`` when disabled.

``DaemonParts`` is what the daemon exposes (read live: the box and the loader are rebuilt
on SIGHUP); ``DaemonHost`` turns it into the governor's ``Host``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from runtime.config.governor import GovernorSettings
from runtime.governor.controller import Governor, Served, Shedder
from runtime.governor.idle import Parking
from runtime.governor.ladder import Rung, rungs_of
from runtime.governor.signals import ServiceLoad
from runtime.service import InferenceService
from runtime.service.swap_lock import SwapLock

log = logging.getLogger(__name__)


class DaemonParts(Protocol):
    """The daemon's public parts the governor is built on."""

    box: Any  # runtime.box.Box (rebuilt on SIGHUP)
    loader: Any  # runtime.loading.loader.VariantLoader (rebuilt on SIGHUP)
    context: Any  # runtime.api.context.ServerContext
    bridge: Any  # runtime.mqtt.bridge.MqttBridge or None
    swap_lock: SwapLock


class DaemonHost:
    """The governor's view of the daemon: served variants, pins, rungs, the swap."""

    def __init__(
        self, parts: DaemonParts, service: InferenceService, shed: Shedder | None = None
    ) -> None:
        self.parts = parts
        self.service = service
        self.load: ServiceLoad = service
        self.shed = shed
        self.parking: Parking | None = service  # idle unload: the service parks text models

    def served(self) -> list[Served]:
        return [
            Served(s.app, s.variant.id, s.package.version, s.task) for s in self.service.slots()
        ]

    def pinned(self, app: str) -> str | None:
        state = self.parts.box.pin_for(app)
        return state.text if state.source in ("operator", "settings") else None

    def rungs(self, app: str) -> list[Rung]:
        slot = next((s for s in self.service.slots() if s.app == app), None)
        if slot is None:
            return []
        return rungs_of(self.parts.loader.select(slot.package, unpinned=True))

    def swap_history(self) -> list[dict[str, Any]]:
        return list(self.parts.swap_lock.history)

    async def swap(self, app: str, variant: str | None, reason: str) -> None:
        async with self.parts.swap_lock.hold(app, "governor"):
            box = self.parts.box
            before = box.pin_for(app)
            box.override(app, variant, reason)
            try:
                await self.service.swap(app)
            except Exception:
                undo = before.variant if before.source == "governor" else None
                box.override(app, undo, reason)
                raise


def attach_events(governor: Governor, bridge: Any) -> None:
    """Each governor action on ``{prefix}/events`` (QoS 1, not retained) through the
    bridge (runtime.mqtt.bridge.MqttBridge.publish_event)."""
    governor.add_listener(bridge.publish_event)


def start_governor(
    settings: GovernorSettings,
    service: InferenceService,
    parts: DaemonParts,
    shed: Shedder | None = None,
) -> Governor | None:
    """Build, register and start the governor on the running loop (after READY); stop it
    with ``await governor.close()``. None when ``[governor] enabled = false``."""
    if not settings.enabled:
        return None
    governor = Governor(settings, DaemonHost(parts, service, shed))
    parts.context.add_section("governor", governor.status)
    parts.context.add_metrics("governor", governor.metric_families)
    if parts.bridge is not None:
        attach_events(governor, parts.bridge)

    def fleet_swap(by: str, app: str) -> None:
        if by == "fleet":
            parts.box.override(app, None)
            governor.forget(app, "a fleet update")

    parts.swap_lock.add_listener(fleet_swap)
    governor.task = asyncio.get_running_loop().create_task(governor.run(), name="governor")
    log.info(
        "watching %s every %g s%s", settings.host_root, settings.period_s,
        " (dry run: decisions are logged, not acted on)" if settings.dry_run else "",
    )  # fmt: skip
    return governor
