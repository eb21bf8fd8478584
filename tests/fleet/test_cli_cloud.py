"""The operator's cloud-side commands, run through the real `headframe` CLI."""

from __future__ import annotations

import json
import stat
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from runtime.cli import app
from tests.support.fleet_repo import write_package


def test_keys_publish_and_bundle_export(tmp_path: Path) -> None:
    cli = CliRunner()
    keys, repo = tmp_path / "keys", tmp_path / "repo"
    r = cli.invoke(app, ["keys", "init", str(keys)])
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE((keys / "root.key").stat().st_mode) == 0o600
    pdir = write_package(tmp_path / "pkgs", "belt", "1.0.0", {"fp32": b"x" * 100})
    r = cli.invoke(
        app,
        ["publish", "--repo", str(repo), "--keys", str(keys), str(pdir),
         "--channel", "canary", "--rollout", "20", "--expires", "7d"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "belt 1.0.0" in r.output and "canary at 20%" in r.output
    assert (repo / "metadata" / "1.root.json").is_file()
    # Online, the timestamp lives days (re-signed daily), not the --expires of the rest.
    online = (repo / "metadata" / "timestamp.json").read_bytes()
    assert timedelta(days=1) <= _expires_in(online) <= timedelta(days=3)
    assert timedelta(days=6) <= _expires_in((repo / "metadata" / "targets.json").read_bytes())
    r = cli.invoke(app, ["bundle", "export", "--repo", str(repo), "--keys", str(keys),
                         str(tmp_path / "b.tar")])  # fmt: skip
    assert r.exit_code == 0, r.output
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        bundled = {n: tar.extractfile(n).read() for n in names if n.startswith("metadata/")}  # type: ignore[union-attr]
    assert "metadata/timestamp.json" in names
    assert any(
        n.startswith("targets/belt/1.0.0/fp32/") and n.endswith(".model.onnx") for n in names
    )
    # The bundle travels to an air-gapped site: its metadata is signed for the bundle's
    # longer life (90 days by default), and the online repository is left as it was.
    for name, data in bundled.items():
        if "root" not in name:
            assert _expires_in(data) >= timedelta(days=89), name
    assert (repo / "metadata" / "timestamp.json").read_bytes() == online
    r = cli.invoke(app, ["bundle", "export", "--repo", str(repo), "--keys", str(keys),
                         "--expires", "900d", str(tmp_path / "c.tar")])  # fmt: skip
    assert r.exit_code == 2 and "after the root metadata expires" in r.output


def _expires_in(signed_json: bytes) -> timedelta:
    expires = json.loads(signed_json)["signed"]["expires"]
    return datetime.fromisoformat(expires.replace("Z", "+00:00")) - datetime.now(UTC)


def test_publish_with_a_bad_rollout_or_missing_keys_says_why(tmp_path: Path) -> None:
    cli = CliRunner()
    pdir = write_package(tmp_path / "pkgs", "belt", "1.0.0", {"fp32": b"x"})
    r = cli.invoke(app, ["publish", "--repo", str(tmp_path / "r"), "--keys", str(tmp_path / "none"),
                         str(pdir)])  # fmt: skip
    assert r.exit_code == 2
    assert "no public key for role 'root'" in r.output
    r = cli.invoke(app, ["publish", "--repo", str(tmp_path / "r"), "--keys", str(tmp_path),
                         "--rollout", "150", str(pdir)])  # fmt: skip
    assert r.exit_code != 0
