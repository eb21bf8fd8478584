"""Where the repository's own files are, for tests at any depth under tests/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# One fake host tree per hardware class: the /proc, /sys and /dev files the probe reads.
HOSTS = REPO / "tests" / "fixtures" / "hosts"
