"""What the host was told: aliases per metric, and the last value sent (report by exception).

One ``Tracker`` per edge node. Aliases are unique across the node and its devices (spec
6.4.2) and stable for the life of the process, so a rebirth announces the same numbers.
"""

from __future__ import annotations

from runtime.sparkplug.payload import Metric, Value

NODE = ""  # the device key of the node's own metrics


class Tracker:
    def __init__(self) -> None:
        self._aliases: dict[tuple[str, str], int] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self._sent: dict[str, dict[str, Metric]] = {}

    def alias(self, device: str, name: str) -> int:
        key = (device, name)
        if key not in self._aliases:
            number = len(self._aliases) + 1
            self._aliases[key] = number
            self._names[number] = key
        return self._aliases[key]

    def name_of(self, device: str, alias: int) -> str | None:
        key = self._names.get(alias)
        return key[1] if key is not None and key[0] == device else None

    def birth(self, device: str, metrics: list[Metric]) -> list[tuple[Metric, int | None, bool]]:
        """Every metric with its name and alias; remembered as sent."""
        self._sent[device] = {m.name: m for m in metrics}
        return [(m, self.alias(device, m.name), True) for m in metrics]

    def changes(self, device: str, metrics: list[Metric]) -> list[tuple[Metric, int | None, bool]]:
        """The metrics whose value differs from the last one sent, by alias alone. A metric
        not in the birth is left out: a new metric needs a rebirth (``needs_birth``)."""
        sent = self._sent.get(device, {})
        out: list[tuple[Metric, int | None, bool]] = []
        for m in metrics:
            before = sent.get(m.name)
            if before is None or _same(before.value, m.value):
                continue
            # A datatype is fixed by the birth certificate; keep it.
            m = Metric(m.name, before.datatype, m.value)
            sent[m.name] = m
            out.append((m, self.alias(device, m.name), False))
        return out

    def needs_birth(self, device: str, metrics: list[Metric]) -> bool:
        sent = self._sent.get(device)
        return sent is None or any(m.name not in sent for m in metrics)

    def born(self) -> list[str]:
        return [d for d in self._sent if d != NODE]

    def forget(self, device: str) -> None:
        self._sent.pop(device, None)

    def forget_all(self) -> None:
        self._sent.clear()


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b and type(a) is type(b)
