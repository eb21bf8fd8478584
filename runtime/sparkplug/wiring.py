"""How the daemon plugs the edge node in: the metrics it reports, read from what the
daemon hands over (a slots view, a stats snapshot, the box's description for the
profile), and ``attach_sparkplug``.

The daemon calls, after the hardware probe::

    node = attach_sparkplug(settings, service, lambda: context.box, select=select)
    if node is not None:
        context.add_section("sparkplug", node.status)            # /status and the page
        context.add_metrics("sparkplug", node.metric_families)   # /metrics
        node.start()           # returns at once; an absent broker is retried
    ...
    await node.stop()          # NDEATH, then disconnect
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from runtime import __version__
from runtime.box.description import BoxDescription
from runtime.config import MqttCommands, MqttSettings, Settings, sparkplug_link_problem
from runtime.errors import ConfigError
from runtime.sparkplug import payload as sp
from runtime.sparkplug.commands import Control, Selector
from runtime.sparkplug.node import EdgeNode

TEMPERATURE_EVERY_S = 10.0  # sysfs reads are not free; a host sees a change within this


class ServiceMetrics:
    """The node's ``MetricSource``: the box as node metrics, each application a device.

    ``slots()`` lists what is served (objects with ``app``, ``package.version``,
    ``variant.id``, ``pin``, ``backend_info.backend/device``), ``stats()`` is the service
    statistics snapshot (per app: requests, errors, p95_ms), ``profile()`` the profile
    name, ``last_result(app)`` a short summary of the app's latest result, when known."""

    def __init__(
        self,
        *,
        slots: Callable[[], list[Any]],
        stats: Callable[[], dict[str, Any]],
        profile: Callable[[], str | None],
        last_result: Callable[[str], str | None] | None = None,
        temperatures: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.slots, self.stats, self.profile = slots, stats, profile
        self.last_result = last_result
        self.temperatures = temperatures
        self._temperature: float | None = None
        self._temperature_at = -TEMPERATURE_EVERY_S
        self.hostname = socket.gethostname()

    def _cpu_temperature(self) -> float | None:
        now = time.monotonic()
        if self.temperatures is not None and now - self._temperature_at >= TEMPERATURE_EVERY_S:
            self._temperature_at = now
            values = self.temperatures().values()
            self._temperature = max(values) if values else None
        return self._temperature

    def node_metrics(self) -> list[sp.Metric]:
        import psutil

        return [
            sp.Metric("Properties/Hostname", sp.STRING, self.hostname),
            sp.Metric("Properties/Software", sp.STRING, f"headframe {__version__}"),
            sp.Metric("Properties/Profile", sp.STRING, self.profile()),
            # MiB, not bytes: report by exception should not send a message every scan.
            sp.Metric(
                "Status/Memory Available MiB", sp.UINT64, psutil.virtual_memory().available >> 20
            ),
            sp.Metric("Status/CPU Temperature", sp.DOUBLE, self._cpu_temperature()),
        ]

    def devices(self) -> dict[str, list[sp.Metric]]:
        stats = self.stats()
        out = {}
        for slot in self.slots():
            app = slot.app
            figures = stats.get(app, {})
            p95 = figures.get("p95_ms")
            out[app] = [
                sp.Metric("Properties/Version", sp.STRING, str(slot.package.version)),
                sp.Metric("Properties/Backend", sp.STRING, slot.backend_info.backend),
                sp.Metric("Properties/Device", sp.STRING, slot.backend_info.device),
                sp.Metric("Variant", sp.STRING, slot.variant.id),
                sp.Metric("Variant Pin", sp.STRING, slot.pin or "auto"),
                sp.Metric("Requests", sp.UINT64, int(figures.get("requests", 0))),
                sp.Metric("Errors", sp.UINT64, int(figures.get("errors", 0))),
                sp.Metric("Latency p95 ms", sp.DOUBLE, None if p95 is None else float(p95)),
                sp.Metric(
                    "Last Result", sp.STRING, self.last_result(app) if self.last_result else None
                ),
            ]
        return out


def broker_link(settings: Settings) -> MqttSettings:
    """The broker the edge node talks to, as its session's settings: ``[sparkplug]``'s own
    host, port, user name and password file where given, else ``[mqtt]``'s (else
    127.0.0.1:1883, anonymous); on ``[mqtt]``'s broker ``[mqtt.tls]``, on a broker of its
    own ``[sparkplug.tls]`` (None: plain TCP); ``[sparkplug]``'s keepalive and longest
    reconnect delay, the rest of the back-off (first delay, refused schedule) as ``[mqtt]``
    sets it for every session. ConfigError when a broker of its own would get ``[mqtt]``'s
    credentials in clear text (``sparkplug_link_problem``; checked here too because the
    unit's mqtt-password credential fills ``mqtt.password_file`` after validation)."""
    spb = settings.sparkplug
    problem = sparkplug_link_problem(spb, settings.mqtt)
    if problem:
        raise ConfigError(problem)
    base = settings.mqtt if settings.mqtt is not None else MqttSettings()
    return base.model_copy(
        update={
            "host": spb.host or base.host,
            "port": spb.port or base.port,
            "username": spb.username or base.username,
            "password_file": spb.password_file or base.password_file,
            "tls": base.tls if spb.host is None else spb.tls,
            "keepalive": spb.keepalive,
            "reconnect_max_s": spb.reconnect_max_s,
        }
    )


def attach_sparkplug(
    settings: Settings,
    service: Any,
    box: Callable[[], BoxDescription],
    *,
    select: Selector,
    last_result: Callable[[str], str | None] | None = None,
    controls: Mapping[str, Control] | None = None,
) -> EdgeNode | None:
    """The edge node when ``[sparkplug] enabled``, else None. ``box`` gives the box's
    description (its profile is the node's ``Properties/Profile``); the daemon registers
    the node's ``status`` ("sparkplug" on /status) and ``metric_families``
    (headframe_sparkplug_* on /metrics). The broker and credentials: ``broker_link``.
    DCMD obeys ``mqtt.commands.select``, each of ``controls`` (``Node Control/...`` name
    -> switch and action) its own switch. A password file that cannot be read raises
    ConfigError here."""
    spb = settings.sparkplug
    if not spb.enabled:
        return None
    mqtt = settings.mqtt
    switches = mqtt.commands if mqtt is not None else MqttCommands()
    from runtime.mqtt.telemetry import temperatures

    source = ServiceMetrics(
        slots=service.slots,
        stats=service.stats.snapshot,
        profile=lambda: _profile_name(box()),
        last_result=last_result,
        temperatures=temperatures,
    )
    return EdgeNode(
        spb,
        link=broker_link(settings),
        source=source,
        select=select,
        obey=switches.enabled,
        controls=controls,
        state_dir=settings.paths.state_dir,
    )


def _profile_name(box: BoxDescription) -> str | None:
    """The profile in force, None before the probe (the metric is then sent as null)."""
    profile = box.profile
    return profile.name if profile is not None else None
