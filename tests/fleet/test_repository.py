"""Cloud side and the box's trust: keys, publish, TUF verification, rollout buckets."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, TargetFile, Timestamp
from tuf.api.serialization.json import JSONSerializer

from runtime.errors import ConfigError, MetadataError
from runtime.fleet.keys import ROLES, init_keys, load_signer
from runtime.fleet.publish import RepoWriter, parse_expires, publish
from runtime.fleet.releases import in_rollout
from runtime.fleet.tufclient import FleetError, TrustedRepo
from tests.support.fleet_repo import write_package
from tests.support.static_server import StaticServer


def test_keys_init_writes_private_keys_owner_only(tmp_path: Path) -> None:
    ids = init_keys(tmp_path / "k")
    assert set(ids) == set(ROLES)
    for role in ROLES:
        mode = stat.S_IMODE((tmp_path / "k" / f"{role}.key").stat().st_mode)
        assert mode == 0o600
        assert json.loads((tmp_path / "k" / f"{role}.pub.json").read_text())["keyid"] == ids[role]
    with pytest.raises(ConfigError, match="already exist"):
        init_keys(tmp_path / "k")


def _box(tmp_path: Path, url: str, repo_dir: Path) -> TrustedRepo:
    return TrustedRepo(url, tmp_path / "box-meta", repo_dir / "metadata" / "1.root.json")


def test_publish_then_box_sees_release_with_channels(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    pkgs = tmp_path / "pkgs"
    write_package(pkgs, "belt", "1.0.0", {"fp32": b"a" * 1000, "int8": b"b" * 300})
    publish(repo_dir, keys_dir, [pkgs / "belt" / "1.0.0"], channel="canary", rollout=20)
    releases = _box(tmp_path, server.url, repo_dir).refresh()
    (r,) = releases["belt"]
    assert r.version == "1.0.0"
    assert r.channels == {"canary": 20}
    assert set(r.variants) == {"fp32", "int8"}
    assert r.variants["int8"].meta.bytes == 300
    assert r.rollout_for("stable") == 0
    # Promote to stable at 100%: same content, only the channel entry changes.
    publish(repo_dir, keys_dir, [pkgs / "belt" / "1.0.0"], channel="stable", rollout=100)
    (r,) = _box(tmp_path, server.url, repo_dir).refresh()["belt"]
    assert r.channels == {"canary": 20, "stable": 100}
    assert r.rollout_for("field") == 100


def test_republishing_a_version_with_other_bytes_is_refused(
    tmp_path: Path, keys_dir: Path, repo_dir: Path
) -> None:
    write_package(tmp_path / "a", "belt", "1.0.0", {"fp32": b"a"})
    write_package(tmp_path / "b", "belt", "1.0.0", {"fp32": b"b"})
    publish(repo_dir, keys_dir, [tmp_path / "a" / "belt" / "1.0.0"])
    with pytest.raises(MetadataError, match="new version"):
        publish(repo_dir, keys_dir, [tmp_path / "b" / "belt" / "1.0.0"])


def test_expired_timestamp_is_rejected(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    write_package(tmp_path / "p", "belt", "1.0.0", {"fp32": b"a"})
    publish(repo_dir, keys_dir, [tmp_path / "p" / "belt" / "1.0.0"])
    RepoWriter(repo_dir, keys_dir).resign_timestamp(timedelta(seconds=-60))
    with pytest.raises(FleetError) as e:
        _box(tmp_path, server.url, repo_dir).refresh()
    assert "expired" in e.value.reason


def test_replayed_old_metadata_is_rejected(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    write_package(tmp_path / "p", "belt", "1.0.0", {"fp32": b"a"})
    publish(repo_dir, keys_dir, [tmp_path / "p" / "belt" / "1.0.0"])
    old_timestamp = (repo_dir / "metadata" / "timestamp.json").read_bytes()
    write_package(tmp_path / "p", "belt", "2.0.0", {"fp32": b"b"})
    publish(repo_dir, keys_dir, [tmp_path / "p" / "belt" / "2.0.0"])
    assert {r.version for r in _box(tmp_path, server.url, repo_dir).refresh()["belt"]} == {
        "1.0.0",
        "2.0.0",
    }
    # An attacker (or a stale CDN edge) serves the older, validly signed timestamp.
    (repo_dir / "metadata" / "timestamp.json").write_bytes(old_timestamp)
    with pytest.raises(FleetError) as e:
        _box(tmp_path, server.url, repo_dir).refresh()
    assert "rollback" in e.value.reason


def test_metadata_signed_by_an_unknown_key_is_rejected(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    write_package(tmp_path / "p", "belt", "1.0.0", {"fp32": b"a"})
    publish(repo_dir, keys_dir, [tmp_path / "p" / "belt" / "1.0.0"])
    rogue = tmp_path / "rogue"
    init_keys(rogue)
    shutil.copy(rogue / "timestamp.key", keys_dir / "timestamp.key")
    shutil.copy(rogue / "timestamp.pub.json", keys_dir / "timestamp.pub.json")
    with pytest.raises(ConfigError, match="not the one"):
        RepoWriter(repo_dir, keys_dir)
    # Sign a newer timestamp with the rogue key anyway (what a thief of the server does).
    ts_path = repo_dir / "metadata" / "timestamp.json"
    ts = Metadata[Timestamp].from_file(str(ts_path))
    ts.signed.version += 1
    ts.sign(load_signer(rogue, "timestamp"))
    ts_path.write_bytes(ts.to_bytes(JSONSerializer()))
    with pytest.raises(FleetError) as e:
        _box(tmp_path, server.url, repo_dir).refresh()
    assert "signature" in e.value.reason


@pytest.mark.parametrize("text,seconds", [("30d", 30 * 86400), ("12h", 43200), ("-1m", -60)])
def test_parse_expires(text: str, seconds: int) -> None:
    assert parse_expires(text).total_seconds() == seconds


def test_staged_rollout_share_is_close_to_the_percentage() -> None:
    nodes = [f"node-{i:04d}" for i in range(1000)]
    share = sum(in_rollout(n, "belt", 20) for n in nodes) / len(nodes)
    assert 0.16 <= share <= 0.24
    # Raising the percentage only adds nodes.
    in20 = {n for n in nodes if in_rollout(n, "belt", 20)}
    in50 = {n for n in nodes if in_rollout(n, "belt", 50)}
    assert in20 <= in50


def test_release_parsing_takes_only_listed_files_and_checks_names(
    tmp_path: Path, keys_dir: Path, repo_dir: Path
) -> None:
    from runtime.fleet.releases import ReleaseError, parse_releases

    write_package(tmp_path / "p", "belt", "1.0.0", {"fp32": b"a" * 10})
    publish(repo_dir, keys_dir, [tmp_path / "p" / "belt" / "1.0.0"])
    targets = dict(RepoWriter(repo_dir, keys_dir).targets.signed.targets)
    # A signed but hostile extra file entry for the variant, pointing outside the package.
    evil = TargetFile.from_data("belt/1.0.0/fp32/x", b"evil", ["sha256"])
    evil.unrecognized_fields["custom"] = {"headframe": {
        "kind": "file", "application": "belt", "version": "1.0.0", "variant": "fp32",
        "path": "../../../etc/cron.d/evil"}}  # fmt: skip
    targets[evil.path] = evil
    (r,) = parse_releases(targets)["belt"]
    assert set(r.variants["fp32"].files) == {"model.onnx"}
    pkg = targets["belt/1.0.0/package.toml"]
    pkg.unrecognized_fields["custom"]["headframe"]["application"] = "other"
    with pytest.raises(ReleaseError, match="custom names other"):
        parse_releases(targets)


def test_an_oversize_metadata_body_is_cut_at_the_cap(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    """A hostile or broken server answers timestamp.json with 20 MiB: the fetch stops
    reading at python-tuf's 16 KiB timestamp cap instead of taking the whole body."""
    from runtime.fleet.tufclient import HttpFetcher

    write_package(tmp_path / "p", "belt", "1.0.0", {"fp32": b"a"})
    publish(repo_dir, keys_dir, [tmp_path / "p" / "belt" / "1.0.0"])
    body = 20 * 1024 * 1024
    (repo_dir / "metadata" / "timestamp.json").write_bytes(b"{" + b" " * (body - 1))
    fetcher = HttpFetcher(attempts=1)
    repo = TrustedRepo(
        server.url, tmp_path / "box-meta", repo_dir / "metadata" / "1.root.json", fetcher=fetcher
    )
    with pytest.raises(FleetError) as e:
        repo.refresh()
    repo.close()
    assert "size cap" in e.value.reason
    cap = repo.updater.config.timestamp_max_length
    assert fetcher.stats.body_bytes <= cap + 256 * 1024 < body  # near the cap, not the body
