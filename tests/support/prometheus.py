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


def scraped(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics text read back by prometheus_client's parser (a malformed line raises):
    sample name (counters keep ``_total``) -> sorted label pairs -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out
