"""The Sparkplug and stream settings shown in README.md and docs/mqtt.md are valid as
written (an example an operator copies must not be refused at start)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from runtime.config import Settings

REPO = Path(__file__).resolve().parents[2]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for name in ("README.md", "docs/mqtt.md"):
        text = (REPO / name).read_text()
        for block in re.findall(r"```toml\n(.*?)```", text, re.DOTALL):
            if "[sparkplug]" in block or "[[streams]]" in block:
                found.append((name, block))
    return found


def test_there_are_examples() -> None:
    names = {name for name, _ in _blocks()}
    assert names == {"README.md", "docs/mqtt.md"}


@pytest.mark.parametrize(("name", "block"), _blocks())
def test_example_is_valid(name: str, block: str) -> None:
    doc = tomllib.loads(block)
    doc.setdefault("mqtt", {})  # streams read from [mqtt]'s broker
    settings = Settings(**doc)
    assert settings.sparkplug.enabled or settings.streams
