"""``headframe detect --save-tree``: what the probe read becomes a fixture host that
reproduces the same report and the same profile anywhere."""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.errors import ProbeError
from runtime.hardware import RuntimeInfo, probe
from runtime.hardware.capture import write_live_answers
from runtime.hardware.hostfs import HostFS
from runtime.hardware.runtimes import runtimes_from_fixture
from runtime.profiles import REPO_PROFILES_DIR, load_profiles, match
from tests.support.paths import HOSTS

runner = CliRunner()


def _facts(report_dict: dict[str, Any]) -> dict[str, Any]:
    """What the files say: the report without where it was read from or how long it took."""
    return {k: v for k, v in report_dict.items() if k not in ("root", "timings", "notes")}


def _detect(*args: str) -> dict[str, Any]:
    res = runner.invoke(app, ["detect", "--json", *args])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


@pytest.mark.parametrize("host", ["jetson-agx-orin", "nvidia-h200-vm"])
def test_a_saved_fixture_host_reproduces_its_report_and_profile(host: str, tmp_path: Path) -> None:
    source = HOSTS / host
    tree = tmp_path / "tree"
    first = _detect("--root", str(source), "--save-tree", str(tree))
    again = _detect("--root", str(tree))

    assert _facts(again["hardware"]) == _facts(first["hardware"])

    def offered(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(r["name"], r["available"], r["version"], r["devices"]) for r in doc["runtimes"]]

    assert offered(again) == offered(first)
    assert again["profile"]["name"] == first["profile"]["name"]
    assert again["profile"]["name"] in ("nvidia-jetson-orin", "nvidia-gpu")
    # Only what the probe reads travels: the fixture's own expectations do not.
    assert not (tree / "expected.toml").exists()
    assert (tree / "proc" / "cpuinfo").read_text() == (source / "proc" / "cpuinfo").read_text()


def test_what_nvml_said_travels_with_the_tree(tmp_path: Path) -> None:
    # The H200 tree keeps NVML's answer: memory and compute capability replay, so the
    # profile's memory budget is the card's, not the host RAM.
    gpu = probe(HOSTS / "nvidia-h200-vm").accelerators_of("gpu", "nvidia")[0]
    assert (gpu.memory_bytes, gpu.compute_capability) == (150754820096, "9.0")
    # A GPU that only NVML sees (a container's trimmed /sys) still makes the GPU host.
    tree = tmp_path / "trimmed"
    shutil.copytree(HOSTS / "qemu-x86-64-minimal", tree)
    shutil.copy(HOSTS / "nvidia-h200-vm" / ".headframe-nvml.toml", tree)
    profiles = load_profiles(REPO_PROFILES_DIR)
    assert match(probe(tree), profiles).profile.name == "nvidia-gpu"
    saved = tmp_path / "saved"
    probe(tree, record_into=saved)
    assert match(probe(saved), profiles).profile.name == "nvidia-gpu"
    assert probe(saved).accelerators == probe(tree).accelerators


def test_runtime_answers_survive_the_file_whatever_their_text(tmp_path: Path) -> None:
    # Reasons are exception messages: several lines, colour codes, quotes, any language.
    awkward = 'line one\nline "two" \\ path\r\x1b[31mred\x1b[0m\x00\x7f\tTab ÄÖ 設備 \ud800'
    report = replace(
        probe(HOSTS / "xeon-nvidia-l4"),
        root="/odd\nroot",
        runtimes=(
            RuntimeInfo("onnxruntime", True, "1.2.3", ("CPUExecutionProvider",)),
            RuntimeInfo("openvino", False, None, (), awkward),
            RuntimeInfo("llama_cpp", True, '0.3 "dev"', ("cpu",), "built without GPU offload"),
        ),
    )
    write_live_answers(report, tmp_path)
    back = runtimes_from_fixture(HostFS(tmp_path))
    assert back == tuple(
        replace(r, reason=r.reason.replace("\ud800", "\ufffd")) if r.reason else r
        for r in report.runtimes
    )


def test_a_probe_that_fails_leaves_no_half_tree(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(HOSTS / "xeon-nvidia-l4", broken)
    (broken / ".headframe-runtimes.toml").write_text("[onnxruntime\n")
    made = tmp_path / "made"
    res = runner.invoke(app, ["detect", "--root", str(broken), "--save-tree", str(made)])
    assert res.exit_code == 2 and "not valid TOML" in res.output
    assert not made.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ProbeError):
        probe(broken, record_into=existing)
    assert list(existing.iterdir()) == []
    # Fixed, the same directory takes the tree.
    shutil.copy(HOSTS / "xeon-nvidia-l4" / ".headframe-runtimes.toml", broken)
    assert probe(broken, record_into=existing).accelerators


def test_a_tree_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    report = probe(HOSTS / "xeon-nvidia-l4")
    with pytest.raises(ProbeError, match="cannot write the tree"):
        write_live_answers(report, tmp_path / "gone")


def test_the_live_host_saved_as_a_tree_matches_the_same_profile(tmp_path: Path) -> None:
    tree = tmp_path / "live"
    live = probe("/", record_into=tree)
    # The live runtimes cannot be copied as files; their answer is kept beside the tree.
    declared = tomllib.loads((tree / ".headframe-runtimes.toml").read_text())
    assert set(declared) == {r.name for r in live.runtimes}
    assert probe(tree).runtimes == live.runtimes

    replay = probe(tree)
    assert replay.cpu.flags == live.cpu.flags and replay.cpu.model == live.cpu.model
    assert replay.memory.total_bytes > 0
    assert replay.pci == live.pci
    assert replay.device_nodes == live.device_nodes
    assert [(a.kind, a.vendor, a.device_paths) for a in replay.accelerators] == [
        (a.kind, a.vendor, a.device_paths) for a in live.accelerators
    ]
    assert replay.board == live.board and replay.thermal == live.thermal
    profiles = load_profiles(REPO_PROFILES_DIR)
    assert match(replay, profiles).profile.name == match(live, profiles).profile.name
    cli = _detect("--save-tree", str(tmp_path / "cli"))
    assert cli["profile"]["name"] == match(live, profiles).profile.name
    assert (tmp_path / "cli" / ".headframe-runtimes.toml").is_file()


def test_save_tree_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    res = runner.invoke(
        app, ["detect", "--root", str(HOSTS / "xeon-nvidia-l4"), "--save-tree", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "not empty" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
