"""How the daemon builds the governor: ``build_governor(settings, ChangeHost(...))`` with
its MQTT events (when the bridge runs) and the fleet hand-over; ``None`` when disabled.

``ChangeHost`` is the governor's ``Host``: the served variants and their pins, the rungs
(the loader's selection with every pin left out) and the swap, which goes through the
change path (runtime.service.changes): one lock with the fleet, the operator and reloads,
one history, and the override put back when the swap fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from runtime.catalog import ModelPackage
from runtime.config.governor import GovernorSettings
from runtime.governor.controller import EventListener, Governor, Served, Shedder
from runtime.governor.idle import Parking
from runtime.governor.ladder import Rung, rungs_of
from runtime.governor.signals import ServiceLoad
from runtime.selection import Selection
from runtime.service import InferenceService
from runtime.service.changes import Change, ChangePath, PinInForce

log = logging.getLogger(__name__)


class PinText(PinInForce, Protocol):
    @property
    def text(self) -> str:
        """Who pinned, and since when (runtime.box.PinState)."""
        ...


class Pins(Protocol):
    """Which pin is in force (runtime.box.Box, rebuilt on SIGHUP: asked each time)."""

    def pin_for(self, app: str) -> PinText: ...


class Rungs(Protocol):
    """The loader's selection with every pin left out (runtime.loading.loader.VariantLoader,
    rebuilt on SIGHUP: asked each time). BLOCKING."""

    def select(self, package: ModelPackage, *, unpinned: bool = False) -> Selection: ...


class ChangeHost:
    """The governor's view of the box: served variants, pins, rungs, the swap."""

    def __init__(
        self,
        service: InferenceService,
        changes: ChangePath,
        *,
        pins: Callable[[], Pins],
        rungs: Callable[[], Rungs],
        shed: Shedder | None = None,
    ) -> None:
        self.service = service
        self.changes = changes
        self._pins = pins
        self._rungs = rungs
        self.load: ServiceLoad = service
        self.shed = shed
        self.parking: Parking | None = service  # idle unload: the service parks text models

    def served(self) -> list[Served]:
        return [
            Served(s.app, s.variant.id, s.package.version, s.task) for s in self.service.slots()
        ]

    def pinned(self, app: str) -> str | None:
        state = self._pins().pin_for(app)
        return state.text if state.source in ("operator", "settings") else None

    def rungs(self, app: str) -> list[Rung]:
        slot = next((s for s in self.service.slots() if s.app == app), None)
        if slot is None:
            return []
        return rungs_of(self._rungs().select(slot.package, unpinned=True))

    async def govern(self, app: str, variant: str | None, reason: str) -> None:
        await self.changes.govern(app, variant, reason)


def build_governor(
    settings: GovernorSettings,
    host: ChangeHost,
    *,
    events: EventListener | None = None,
) -> Governor | None:
    """The governor on ``host``, or None when ``[governor] enabled = false``; the daemon
    starts it after READY (``governor.start()``) and stops it first at shutdown
    (``await governor.stop()``: no swap starts while the service drains). ``events``:
    each action, for MQTT ``{prefix}/events`` (runtime.mqtt.bridge.MqttBridge.publish_event).
    A fleet change of an application makes the governor forget its steps there (the change
    path has dropped the override: the new version starts from its own choice)."""
    if not settings.enabled:
        return None
    governor = Governor(settings, host)
    if events is not None:
        governor.add_listener(events)

    def fleet_change(change: Change) -> None:
        if change.by == "fleet" and change.ended is None:
            governor.forget(change.app, "a fleet update")

    host.changes.add_listener(fleet_change)
    return governor
