"""A package with a picture contract publishes and reaches the box: the contract's floats
stay out of the signed custom metadata, and package.toml (which holds it) is a target
signed by its hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from runtime.fleet.publish import publish
from runtime.fleet.tufclient import TrustedRepo
from tests.support.image_models import write_picture_package
from tests.support.static_server import StaticServer


def test_a_package_with_pictures_publishes_and_its_contract_travels_signed(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    package = write_picture_package(tmp_path / "pkgs")
    publish(repo_dir, keys_dir, [package.path], channel="stable", rollout=100)
    box = TrustedRepo(server.url, tmp_path / "box-meta", repo_dir / "metadata" / "1.root.json")
    (release,) = box.refresh()["part-id-reader"]
    assert release.package.schema_version == 2
    assert release.package.labels == package.meta.labels
    assert release.package.images is None  # summary only; the file carries it
    toml = (package.path / "package.toml").read_bytes()
    assert b"[images.pixels]" in toml
    assert release.package_target.hashes["sha256"] == hashlib.sha256(toml).hexdigest()
