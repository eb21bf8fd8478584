"""The offline bundle: what a site without internet receives. Its install.sh is run for
real in test_lifecycle.py (it needs the machine); here: contents, checksums, and that the
wheels alone rebuild the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.packaging.pkgtools import Built, run

pytestmark = pytest.mark.slow


def test_layout_and_checksums_cover_every_file(bundle: Path, built: Built) -> None:
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert bundle.name == f"headframe-offline-{built.version}-{arch}"
    assert os.access(bundle / "install.sh", os.X_OK)
    assert (bundle / "packages" / built.deb.name).read_bytes() == built.deb.read_bytes()
    if built.rpm is not None:
        assert (bundle / "packages" / built.rpm.name).exists()
    wheels = [p.name for p in (bundle / "wheels").glob("*.whl")]
    assert any(w.startswith("headframe-") for w in wheels)
    assert any(w.startswith("pip-") for w in wheels)
    assert list((bundle / "demo" / "store").glob("part-id-reader/*/package.toml"))
    listed = sorted(line[66:] for line in (bundle / "SHA256SUMS").read_text().splitlines())
    present = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    present.remove("SHA256SUMS")
    assert listed == present
    run("sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS", cwd=bundle)


def test_verify_only_accepts_the_bundle(bundle: Path) -> None:
    out = run(bundle / "install.sh", "--verify-only")
    assert "bundle verified" in out.stdout


def test_wheels_alone_rebuild_the_environment(bundle: Path, built: Built) -> None:
    # No index, no pip configuration (this machine's points at local wheel caches): only
    # the bundle's wheels. --dry-run resolves every requirement without installing.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    run("/usr/bin/python3", "-m", "venv", "--without-pip", bundle.parent / "venv")
    pip_wheel = next((bundle / "wheels").glob("pip-*.whl"))
    out = run(
        bundle.parent / "venv" / "bin" / "python",
        f"{pip_wheel}/pip",
        "install",
        "--dry-run",
        "--no-index",
        "--find-links",
        bundle / "wheels",
        f"headframe[{built.extras}]",
        env=env,
    )
    assert "Would install" in out.stdout and "headframe-" in out.stdout
