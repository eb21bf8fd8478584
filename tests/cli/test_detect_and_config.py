"""``headframe detect`` and ``headframe config`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from tests.support.paths import HOSTS

runner = CliRunner()


def test_detect_json_has_the_documented_keys() -> None:
    res = runner.invoke(app, ["detect", "--root", str(HOSTS / "xeon-nvidia-l4"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    cpu = doc["hardware"]["cpu"]
    assert cpu["arch"] == "x86_64" and cpu["cores"] == 16
    assert cpu["model"] == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert "avx512f" in cpu["flags"]
    assert doc["hardware"]["memory"]["total_bytes"] == 65845048 * 1024
    assert doc["hardware"]["accelerators"] == [
        {
            "kind": "gpu",
            "vendor": "nvidia",
            "model": "NVIDIA L4",
            "memory_bytes": None,
            "device_paths": ["/dev/nvidia0"],
            "pci_address": "0000:00:03.0",
            "compute_capability": None,
        }
    ]
    ort = next(r for r in doc["runtimes"] if r["name"] == "onnxruntime")
    assert ort["devices"][:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert doc["profile"]["name"] == "nvidia-gpu"
    assert "GPU present: NVIDIA L4 (nvidia)" in doc["profile"]["reasons"]
    names = {c["name"]: c for c in doc["profile"]["candidates"]}
    assert names["nvidia-jetson-orin"]["matched"] is False
    assert names["nvidia-jetson-orin"]["reasons"]
    assert "files_total" in doc["timings_s"]


def test_detect_table_shows_profile_and_reasons() -> None:
    res = runner.invoke(app, ["detect", "--root", str(HOSTS / "rock-5b-rk3588")])
    assert res.exit_code == 0, res.output
    assert "Profile: rockchip-rk3588" in res.stdout
    assert "RKNN runtime" in res.stdout
    assert "Rockchip RK3588 NPU" in res.stdout


def test_detect_unreadable_root_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["detect", "--root", str(tmp_path / "nowhere")])
    assert res.exit_code == 2
    assert "probe root is not a directory" in res.stderr


def test_detect_invalid_profile_file_exits_2_naming_file_and_field(
    write_profile: Callable[..., Path],
) -> None:
    bad = write_profile("bad", 10, 'arch = ["x86_64"]\ngpu_vendr = ["nvidia"]')
    res = runner.invoke(
        app, ["detect", "--root", str(HOSTS / "epyc-7313p-server"), "--profiles", str(bad.parent)]
    )
    assert res.exit_code == 2
    assert str(bad) in res.stderr and "match.gpu_vendr" in res.stderr


def test_python_m_runtime_detect_on_the_live_host() -> None:
    # The real entry point in a real process, with live enrichment.
    out = subprocess.run(
        [sys.executable, "-m", "runtime", "detect", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert doc["hardware"]["cpu"]["cores"] == os.cpu_count()
    assert {r["name"] for r in doc["runtimes"]} == {"onnxruntime", "openvino", "llama_cpp"}
    assert doc["profile"]["name"]


def test_config_show_names_the_source_of_each_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "headframe.toml"
    cfg.write_text("demo = true\n[api]\nport = 9001\n")
    monkeypatch.setenv("HEADFRAME_DEMO", "false")
    res = runner.invoke(app, ["config", "show", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["key"]: r for r in json.loads(res.stdout)}
    assert rows["api.port"] == {"key": "api.port", "value": 9001, "source": f"file {cfg}"}
    assert rows["demo"]["value"] is False
    assert rows["demo"]["source"] == "env HEADFRAME_DEMO"
    assert rows["api.host"]["source"] == "default"


def test_config_show_bad_file_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "headframe.toml"
    cfg.write_text("[api]\nprot = 1\n")
    res = runner.invoke(app, ["config", "show", "--config", str(cfg)])
    assert res.exit_code == 2
    assert "unknown key 'api.prot'" in res.stderr


def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[mqtt]\nhost = "broker.local"\nsite = "pit-3"\n')
    res = runner.invoke(app, ["config", "check", str(good)])
    assert res.exit_code == 0 and f"{good}: ok" in res.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[api]\nport = 70000\n")
    res = runner.invoke(app, ["config", "check", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}: api.port" in res.stderr
    res = runner.invoke(app, ["config", "check", str(tmp_path / "missing.toml")])
    assert res.exit_code == 1 and "not found" in res.stderr


def test_detect_on_a_directory_that_is_not_a_linux_root_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["detect", "--root", str(tmp_path), "--json"])
    assert res.exit_code == 2
    assert "proc/cpuinfo: not readable" in res.stderr
    assert res.stdout == ""


def test_detect_uses_the_profiles_dir_from_settings(
    tmp_path: Path, write_profile: Callable[..., Path]
) -> None:
    # The daemon reads settings.paths.profiles_dir; detect must show the same match.
    only = write_profile("site-box", 5, 'arch = ["x86_64"]', 'generic_for_arch = "x86_64"')
    cfg = tmp_path / "headframe.toml"
    cfg.write_text(f'[paths]\nprofiles_dir = "{only.parent}"\n')
    host = str(HOSTS / "epyc-7313p-server")
    res = runner.invoke(app, ["detect", "--root", host, "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["profile"]["name"] == "site-box"
    cfg.write_text("[paths]\nprofile_dir = 1\n")
    res = runner.invoke(app, ["detect", "--root", host, "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown key 'paths.profile_dir'" in res.stderr
