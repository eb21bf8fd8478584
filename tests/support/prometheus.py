"""A metrics source's families as the text /metrics serves, through prometheus_client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric


class _Source:
    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source()


def prometheus_text(source: Callable[[], Iterable[Metric]]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Source(source))  # type: ignore[arg-type]
    return generate_latest(registry).decode()
