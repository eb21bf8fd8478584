"""How the daemon plugs the bridge in: ``attach_bridge`` builds it from the settings and
hooks its figures into the HTTP side (the /status section and /metrics families).

The daemon (the one composition root) calls, after the hardware probe::

    bridge = attach_bridge(settings, service, context, fleet=fleet_runner_or_None)
    if bridge is not None:
        bridge.start()          # returns at once; an absent broker is retried
    ...
    await bridge.stop()         # before service.close(): "offline", replies stay buffered
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from runtime.config import Settings
from runtime.mqtt.bridge import MqttBridge
from runtime.mqtt.ports import MqttService

_HARDWARE_KEYS = ("cpu", "memory", "accelerators", "board", "thermal", "runtimes")
GIL_SWITCH_S = 0.0005


def tune_interpreter() -> None:
    """A shorter GIL switch interval (0.5 ms instead of CPython's 5 ms), so the event loop
    and the model's worker thread hand over quickly. It was worth 25 % of MQTT throughput
    when paho ran on its own network thread (four threads per request); with paho on the
    event loop (two) 5, 0.5 and 0.1 ms measured within noise of each other (bench/README.md,
    "MQTT"), so this only guards against a slow hand-off on a busier box."""
    if sys.getswitchinterval() > GIL_SWITCH_S:
        sys.setswitchinterval(GIL_SWITCH_S)


def info_from(context: Any) -> Callable[[], dict[str, Any]]:
    """The hardware and profile part of the retained info topic, from the daemon's
    ServerContext (report, match, profile, hostname); read at every publish."""

    def info() -> dict[str, Any]:
        doc: dict[str, Any] = {"hostname": getattr(context, "hostname", None)}
        report = getattr(context, "report", None)
        if report is not None and hasattr(report, "to_dict"):
            data = report.to_dict()
            doc["hardware"] = {k: data[k] for k in _HARDWARE_KEYS if k in data}
        profile = getattr(context, "profile", None)
        if profile is not None:
            doc["profile"] = getattr(profile, "name", str(profile))
        match = getattr(context, "match", None)
        if match is not None:
            doc["profile_reasons"] = list(getattr(match, "reasons", []))
        return doc

    return info


def attach_bridge(
    settings: Settings,
    service: MqttService,
    context: Any,
    *,
    fleet: Any = None,
    fast_path: bool | None = None,
) -> MqttBridge | None:
    """The bridge when ``[mqtt]`` is configured, else None. ``fast_path``: the daemon's
    start-up check of paho (runtime.mqtt.paho_compat.start_up). Adds an "mqtt" section to
    /status and the headframe_mqtt_* families to /metrics; with a fleet runner, the
    ``update-now`` command nudges it."""
    if settings.mqtt is None:
        return None
    bridge = MqttBridge(
        settings.mqtt,
        service,
        info=info_from(context),
        state_dir=settings.paths.state_dir,
        fast_path=fast_path,
    )
    sections = getattr(context, "sections", None)
    if isinstance(sections, dict):
        sections["mqtt"] = bridge.stats
    metrics = getattr(context, "metrics", None)
    if isinstance(metrics, list):
        metrics.append(bridge.metrics_text)
    tune_interpreter()
    if fleet is not None:

        async def update_now(body: dict[str, Any]) -> Any:
            fleet.update_now()
            return {"update": "checking the repository now"}

        bridge.commands.register("update-now", update_now)
    return bridge
