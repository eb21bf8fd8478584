"""Fleet fixtures: role keys, a repository served from loopback, package makers."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.fleet.keys import init_keys
from tests.support.static_server import StaticServer


def write_package(
    root: Path,
    app: str,
    version: str,
    variants: dict[str, bytes],
    *,
    floor_bp: int = 0,
) -> Path:
    """A package tree with opaque variant files (for tests that never load them)."""
    pdir = root / app / version
    (pdir / "variants").mkdir(parents=True, exist_ok=True)
    (pdir / "package.toml").write_text(
        f'application = "{app}"\nversion = "{version}"\ntask = "tensor"\n'
        f"accuracy_floor_bp = {floor_bp}\n"
        '[lineage]\nfoundation = "f"\nsector = "s"\napplication = "a"\n'
    )
    for vid, data in variants.items():
        vdir = pdir / "variants" / vid
        vdir.mkdir(parents=True, exist_ok=True)
        (vdir / "model.onnx").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        (vdir / "variant.toml").write_text(
            f'variant = "{vid}"\nformat = "onnx"\nprecision = "fp32"\n'
            f'entrypoint = "model.onnx"\nbytes = {len(data)}\npeak_memory_bytes = {len(data)}\n'
            f'[[files]]\npath = "model.onnx"\nsha256 = "{sha}"\nsize = {len(data)}\n'
        )
    return pdir


@pytest.fixture(scope="session")
def fleet_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    init_keys(keys)
    return keys


@pytest.fixture
def keys_dir(fleet_keys: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "keys"
    shutil.copytree(fleet_keys, dest)
    return dest


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def server(repo_dir: Path) -> Iterator[StaticServer]:
    repo_dir.mkdir(parents=True, exist_ok=True)
    with StaticServer(repo_dir) as s:
        yield s
