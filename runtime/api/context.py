"""``ServerContext``: what the HTTP side shows besides the service, registered explicitly.

The daemon (or a test) builds one, hands it to ``create_app`` and registers with it:

    context = ServerContext(lambda: daemon.description)  # the box's description in force
    context.add_section("fleet", runner.status)          # a block of /status and the page
    context.add_metrics("fleet", runner.metric_families) # prometheus_client families

A section is a callable returning JSON-able data, read at every request; a metrics source
is a callable returning prometheus_client ``Metric`` families, read at every scrape. A
name registers once (a second registration is a bug, not an update); a source that raises
is logged and left out, and never takes /status or /metrics down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runtime.box.description import BoxDescription

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

Section = Callable[[], Any]
MetricSource = Callable[[], "Iterable[Metric]"]
# The status document's own keys; a section may not hide them.
RESERVED_SECTIONS = frozenset({"server", "host", "profile", "applications"})


class ServerContext:
    """The box's description and the daemon's registrations: status sections and metrics
    sources. ``box()`` is the description in force, read at every request (the daemon
    probes after the HTTP server is up, and again on SIGHUP); an empty one by default."""

    def __init__(self, box: Callable[[], BoxDescription] = BoxDescription) -> None:
        self.started_at = time.time()
        self._box = box
        self._sections: dict[str, Section] = {}
        self._metrics: dict[str, MetricSource] = {}

    @property
    def box(self) -> BoxDescription:
        return self._box()

    def add_section(self, name: str, section: Section) -> None:
        """Add ``name`` to /status and the status page."""
        if name in RESERVED_SECTIONS or name in self._sections:
            raise ValueError(f"status section {name!r} is already taken")
        self._sections[name] = section

    def add_metrics(self, name: str, source: MetricSource) -> None:
        """Add ``source``'s families to /metrics."""
        if name in self._metrics:
            raise ValueError(f"metrics source {name!r} is already registered")
        self._metrics[name] = source

    @property
    def sections(self) -> Mapping[str, Section]:
        return MappingProxyType(self._sections)

    @property
    def metric_sources(self) -> Mapping[str, MetricSource]:
        return MappingProxyType(self._metrics)
