"""Read a systemd unit file into {section: {key: [values...]}} (keys repeat in units)."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import REPO

UNIT = REPO / "systemd" / "headframe.service"


def parse_unit(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(path: Path = UNIT) -> dict[str, list[str]]:
    return parse_unit(path)["Service"]
