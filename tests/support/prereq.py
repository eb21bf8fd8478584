"""Skip a test whose prerequisite is missing on a developer's machine, but fail it in CI.

`make test` (and so CI) installs every prerequisite: there a missing broker or runtime is a
broken install step, and a skip would hide it behind a green run.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip with ``reason`` on a developer's machine; fail with it under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: make test installs it, so this is a broken install)")
    # allow_module_level: a module whose every test needs it may call this at its top.
    pytest.skip(reason, allow_module_level=True)


def need_tool(*programs: str) -> None:
    """Skip (fail under CI=true) unless every program is installed: a name on PATH, or a
    path that exists."""
    gone = [p for p in programs if shutil.which(p) is None and not Path(p).exists()]
    if gone:
        missing(f"{' and '.join(gone)} not installed (scripts/system-deps.sh installs it)")


def need_module(name: str) -> ModuleType:
    """importorskip that fails under CI=true."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"could not import {name}: {e}")
