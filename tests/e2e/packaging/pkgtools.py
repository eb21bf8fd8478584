"""Helpers shared by the package tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO  # noqa: F401 (the package tests import it from here)

TEST_EXTRAS = os.environ.get("HEADFRAME_TEST_EXTRAS", "onnx,mqtt,fleet")


@dataclass(frozen=True)
class Built:
    deb: Path
    rpm: Path | None
    version: str  # the package version, upstream + "-1"
    extras: str
    build_dir: Path  # BUILD_DIR of build.sh: wheels/ and the staged root


def run(
    *cmd: str | Path,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    out = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    if check:
        assert out.returncode == 0, f"{cmd} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out
