"""Fixtures for the hardware and profile tests (a plugin of tests/conftest.py): the
repository's device profiles and a writer of small profile files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.profiles import REPO_PROFILES_DIR, DeviceProfile, load_profiles


@pytest.fixture(scope="session")
def repo_profiles() -> list[DeviceProfile]:
    return load_profiles(REPO_PROFILES_DIR)


@pytest.fixture
def write_profile(tmp_path: Path) -> Callable[..., Path]:
    """Write a small valid profile into tmp_path/profiles; extra TOML lines go in verbatim."""
    directory = tmp_path / "profiles"
    directory.mkdir(exist_ok=True)

    def write(name: str, priority: int = 10, match: str = "", extra: str = "") -> Path:
        path = directory / f"{name}.toml"
        path.write_text(
            f'name = "{name}"\ndescription = "test profile {name}"\npriority = {priority}\n'
            f'precisions = ["fp32"]\n{extra}\n'
            f'[match]\n{match}\n\n[[targets]]\nbackend = "onnx"\ndevice = "cpu"\n'
        )
        return path

    return write
