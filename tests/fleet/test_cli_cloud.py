"""The operator's cloud-side commands, run through the real `headframe` CLI."""

from __future__ import annotations

import stat
import tarfile
from pathlib import Path

from typer.testing import CliRunner

from runtime.cli import app
from tests.fleet.conftest import write_package


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
    r = cli.invoke(app, ["bundle", "export", "--repo", str(repo), str(tmp_path / "b.tar")])
    assert r.exit_code == 0, r.output
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
    assert "metadata/timestamp.json" in names
    assert any(
        n.startswith("targets/belt/1.0.0/fp32/") and n.endswith(".model.onnx") for n in names
    )


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
