"""How the daemon builds the bridge: ``attach_bridge`` makes it from the settings, with
the retained ``info`` document reading the box's description.

The daemon (the one composition root) calls, after the hardware probe::

    bridge = attach_bridge(settings, service, lambda: context.box, changes=changes)
    if bridge is not None:
        context.add_section("mqtt", bridge.stats)            # /status and the page
        context.add_metrics("mqtt", bridge.metric_families)  # /metrics
        bridge.start()          # returns at once; an absent broker is retried
    ...
    await bridge.stop()         # before service.close(): "offline", replies stay buffered
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.box.description import BoxDescription
from runtime.config import Settings
from runtime.mqtt.bridge import MqttBridge
from runtime.mqtt.ports import Changes, MqttService
from runtime.service.load_shed import LoadShed

_HARDWARE_KEYS = ("cpu", "memory", "accelerators", "board", "thermal", "runtimes")


def info_from(
    box: Callable[[], BoxDescription], sections: Mapping[str, Callable[[], Any]] | None = None
) -> Callable[[], dict[str, Any]]:
    """The hardware and profile part of the retained info topic, from the box's
    description, and the ``sections`` the daemon adds (the box policy, calibration);
    read at every publish."""
    sections = dict(sections or {})

    def info() -> dict[str, Any]:
        desc = box()
        doc: dict[str, Any] = {"hostname": desc.hostname}
        if desc.report is not None:
            data = desc.report.to_dict()
            doc["hardware"] = {k: data[k] for k in _HARDWARE_KEYS if k in data}
        if desc.match is not None:
            doc["profile"] = desc.match.profile.name
            doc["profile_reasons"] = list(desc.match.reasons)
        for name, section in sections.items():  # the box policy in force; what was measured
            doc[name] = section()
        return doc

    return info


def attach_bridge(
    settings: Settings,
    service: MqttService,
    box: Callable[[], BoxDescription] = BoxDescription,
    *,
    changes: Changes,
    fleet: Any = None,
    fast_path: bool | None = None,
    info_sections: Mapping[str, Callable[[], Any]] | None = None,
    shed: LoadShed | None = None,
) -> MqttBridge | None:
    """The bridge when ``[mqtt]`` is configured, else None. ``fast_path``: the daemon's
    start-up check of paho (runtime.mqtt.paho_compat.start_up). With a fleet runner, the
    ``update-now`` command nudges it. ``shed``: the daemon's one LoadShed, which pauses
    the bridge's requests while it blocks their application. ``changes``: the change
    path, which obeys the ``select`` and ``reload`` commands."""
    if settings.mqtt is None:
        return None
    bridge = MqttBridge(
        settings.mqtt,
        service,
        changes=changes,
        info=info_from(box, info_sections),
        state_dir=settings.paths.state_dir,
        fast_path=fast_path,
        shed=shed,
    )
    if fleet is not None:

        async def update_now(body: dict[str, Any]) -> Any:
            fleet.update_now()
            return {"update": "checking the repository now"}

        bridge.commands.register("update-now", update_now)
    return bridge
