"""The optional rooms the daemon runs, each behind one small contract.

A ``Room`` starts, stops, says its status (a section of /status and the status page) and
gives its Prometheus families (/metrics): the MQTT bridge (``[mqtt]``), the Sparkplug B edge
node (``[sparkplug] enabled``), the stream bindings (``[[streams]]``), the fleet runner
(``[fleet]``) and the governor (``[governor] enabled``). ``build_rooms`` makes every room the
settings ask for at once, after the probe, each given what it needs (the service, the change
path, callables for the parts SIGHUP rebuilds); the daemon registers them with the HTTP side
in one call and starts each at its moment: the bridge and the edge node at once (they answer
not_ready until the models load), the streams once the models are loaded (each binding
checks its window against its model), the governor and the fleet after READY. Changes to
these tables need a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runtime.api.context import ServerContext
from runtime.box import Box
from runtime.box.description import BoxDescription
from runtime.config import Settings
from runtime.errors import HeadframeError
from runtime.knowledge import KnowledgeLibrary
from runtime.loading.loader import VariantLoader
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from runtime.service.load_shed import LoadShed

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from runtime.fleet.runner import FleetRunner
    from runtime.governor.controller import Governor
    from runtime.mqtt.bridge import MqttBridge
    from runtime.sparkplug.node import EdgeNode
    from runtime.streams.runner import StreamsRunner

log = logging.getLogger(__name__)


class Room(Protocol):
    """What the daemon needs of an optional room."""

    def start(self) -> None:
        """Start on the running loop; returns at once (a broker away is retried)."""
        ...

    async def stop(self) -> None: ...

    def status(self) -> Any:
        """The room's section of /status and the status page (JSON-able)."""
        ...

    def metric_families(self) -> list[Metric]: ...


@dataclass(frozen=True)
class Rooms:
    """The rooms the settings ask for (None where off), built once by ``build_rooms``."""

    bridge: MqttBridge | None = None
    sparkplug: EdgeNode | None = None
    streams: StreamsRunner | None = None
    fleet: FleetRunner | None = None
    governor: Governor | None = None

    def named(self) -> dict[str, Room]:
        """Each room present by its /status section name, in start order."""
        rooms: dict[str, Room | None] = {
            "mqtt": self.bridge, "sparkplug": self.sparkplug, "streams": self.streams,
            "governor": self.governor, "fleet": self.fleet,
        }  # fmt: skip
        return {name: room for name, room in rooms.items() if room is not None}

    def register(self, context: ServerContext) -> None:
        """Every room's status section and metrics source, in one place."""
        for name, room in self.named().items():
            context.add_section(name, room.status)
            context.add_metrics(name, room.metric_families)

    def start(self, *names: str) -> None:
        rooms = self.named()
        for name in names:
            if name in rooms:
                rooms[name].start()
        if "fleet" in names and self.fleet is not None and self.bridge is not None:
            from runtime.fleet import mqtt_hook  # update-now and the retained fleet state

            mqtt_hook.attach(self.fleet, self.bridge)

    async def stop(self, *names: str) -> None:
        """Stop ``names`` in that order; one that fails to stop is logged, the rest go on."""
        rooms = self.named()
        for name in names:
            if name in rooms:
                try:
                    await rooms[name].stop()
                except Exception:
                    log.exception("stopping %s failed", name)


@dataclass(frozen=True)
class RoomParts:
    """What the rooms are built on. ``box``, ``loader`` and ``description`` are read live:
    SIGHUP rebuilds them."""

    settings: Settings
    service: InferenceService
    changes: ChangePath
    shed: LoadShed
    knowledge: KnowledgeLibrary | None
    box: Callable[[], Box]
    loader: Callable[[], VariantLoader]
    description: Callable[[], BoxDescription]
    info_sections: Mapping[str, Callable[[], Any]]


def build_rooms(parts: RoomParts) -> Rooms:
    """Every room ``parts.settings`` asks for, wired to each other: the bridge refuses the
    streams' topics as Response Topics, the governor's actions go out as MQTT events, the
    Sparkplug node reads the streams' last results and obeys Reload Models and Update Now."""
    bridge = _bridge(parts)
    streams = _streams(parts, bridge)
    fleet = _fleet(parts)
    governor = _governor(parts, bridge)
    sparkplug = _sparkplug(parts, streams, fleet)
    return Rooms(bridge, sparkplug, streams, fleet, governor)


def _bridge(parts: RoomParts) -> MqttBridge | None:
    if parts.settings.mqtt is None:
        return None
    from runtime.mqtt import paho_compat
    from runtime.mqtt.wiring import attach_bridge

    # Once per process: paho's version decides the fast path (and FastProperties).
    mode = paho_compat.start_up(parts.settings.mqtt)
    return attach_bridge(
        parts.settings,
        parts.service,
        parts.description,
        changes=parts.changes,
        fast_path=mode.fast,
        info_sections=parts.info_sections,
        shed=parts.shed,
        knowledge=parts.knowledge,
    )


def _streams(parts: RoomParts, bridge: MqttBridge | None) -> StreamsRunner | None:
    if not parts.settings.streams:
        return None
    from runtime.streams.runner import attach_streams

    refuse = bridge.reply_topics.refuse if bridge is not None else None
    return attach_streams(parts.settings, parts.service, refuse=refuse)


def _fleet(parts: RoomParts) -> FleetRunner | None:
    """The update agent in this process (no timer unit): its cycles on a worker thread,
    its hot swaps through the change path."""
    settings = parts.settings
    if settings.fleet is None:
        return None
    from runtime.fleet.pack_host import LoopPackHost
    from runtime.fleet.runner import FleetRunner, hot_swap
    from runtime.fleet.wiring import build_agent, chooser_and_picker

    # The trial measures the downloaded candidates as the loader would (same cache).
    chooser, picker = chooser_and_picker(
        settings, parts.box, lambda p: parts.loader().select(p, governed=False)
    )
    try:
        agent = build_agent(
            settings,
            chooser=chooser,
            loader=lambda package, pin: parts.loader()(package, pin),
            picker=picker,
            on_activated=hot_swap(parts.changes),
            # Packs are tried with the service that answers queries, then the library
            # that serves them switches (on this, the daemon's, loop).
            pack_host=LoopPackHost(parts.knowledge, parts.service, asyncio.get_running_loop())
            if parts.knowledge is not None
            else None,
        )
    except HeadframeError as e:
        log.error("model updates are off: %s", e.message)
        return None
    log.info("model updates from %s on channel %s as node %s", settings.fleet.url,
             settings.fleet.channel, agent.node_id)  # fmt: skip
    return FleetRunner(agent, parts.changes)


def _governor(parts: RoomParts, bridge: MqttBridge | None) -> Governor | None:
    from runtime.governor.wiring import ChangeHost, build_governor

    host = ChangeHost(
        parts.service, parts.changes, pins=parts.box, rungs=parts.loader, shed=parts.shed
    )
    events = bridge.publish_event if bridge is not None else None
    return build_governor(parts.settings.governor, host, events=events)


def _sparkplug(
    parts: RoomParts, streams: StreamsRunner | None, fleet: FleetRunner | None
) -> EdgeNode | None:
    if not parts.settings.sparkplug.enabled:
        return None
    from runtime.sparkplug.commands import Control
    from runtime.sparkplug.wiring import attach_sparkplug

    changes = parts.changes

    async def reload_models() -> None:
        await changes.reload(None, "sparkplug")  # the MQTT reload command's meaning

    # Beside Rebirth, each under the mqtt.commands switch of the MQTT command that does
    # the same.
    controls = {"Node Control/Reload Models": Control("reload", reload_models)}
    if fleet is not None:

        async def update_now() -> None:
            fleet.update_now()

        controls["Node Control/Update Now"] = Control("update-now", update_now)
    return attach_sparkplug(
        parts.settings,
        parts.service,
        parts.description,
        # DCMD Variant pins through the box (persisted), as HTTP and MQTT select do.
        select=lambda app, v: changes.pin(app, v, "sparkplug"),
        controls=controls,
        last_result=streams.last_result if streams is not None else None,
    )
