"""``headframe detect --save-tree``: what the probe read becomes a fixture host that
reproduces the same report and the same profile anywhere."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from runtime.cli import app
from runtime.hardware import probe
from runtime.profiles import REPO_PROFILES_DIR, load_profiles, match
from tests.hardware.conftest import HOSTS

runner = CliRunner()


def _facts(report_dict: dict[str, Any]) -> dict[str, Any]:
    """What the files say: the report without where it was read from or how long it took."""
    return {k: v for k, v in report_dict.items() if k not in ("root", "timings", "notes")}


def _detect(*args: str) -> dict[str, Any]:
    res = runner.invoke(app, ["detect", "--json", *args])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_a_saved_fixture_host_reproduces_its_report_and_profile(tmp_path: Path) -> None:
    source = HOSTS / "jetson-agx-orin"
    tree = tmp_path / "tree"
    first = _detect("--root", str(source), "--save-tree", str(tree))
    again = _detect("--root", str(tree))

    assert _facts(again["hardware"]) == _facts(first["hardware"])

    def offered(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(r["name"], r["available"], r["version"], r["devices"]) for r in doc["runtimes"]]

    assert offered(again) == offered(first)
    assert again["profile"]["name"] == first["profile"]["name"] == "nvidia-jetson-orin"
    # Only what the probe reads travels: the fixture's own expectations do not.
    assert not (tree / "expected.toml").exists()
    assert (tree / "etc" / "nv_tegra_release").read_text() == (
        source / "etc" / "nv_tegra_release"
    ).read_text()


def test_the_live_host_saved_as_a_tree_matches_the_same_profile(tmp_path: Path) -> None:
    tree = tmp_path / "live"
    live = probe("/", record_into=tree)
    # The live runtimes cannot be copied as files; the CLI writes them beside the tree.
    _detect("--save-tree", str(tmp_path / "cli"))
    declared = tomllib.loads((tmp_path / "cli" / ".headframe-runtimes.toml").read_text())
    assert set(declared) == {r.name for r in live.runtimes}
    for rt in live.runtimes:
        assert declared[rt.name]["available"] is rt.available

    replay = probe(tree)
    assert replay.cpu.flags == live.cpu.flags and replay.cpu.model == live.cpu.model
    assert replay.memory.total_bytes > 0
    assert replay.pci == live.pci
    assert replay.device_nodes == live.device_nodes
    assert [(a.kind, a.vendor, a.device_paths) for a in replay.accelerators] == [
        (a.kind, a.vendor, a.device_paths) for a in live.accelerators
    ]
    profiles = load_profiles(REPO_PROFILES_DIR)
    cli_replay = probe(tmp_path / "cli")
    assert match(cli_replay, profiles).profile.name == match(live, profiles).profile.name


def test_save_tree_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    res = runner.invoke(
        app, ["detect", "--root", str(HOSTS / "xeon-nvidia-l4"), "--save-tree", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "not empty" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
