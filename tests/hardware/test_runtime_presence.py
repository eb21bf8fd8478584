"""Cold start (issue 15 item 8): the daemon imports only the runtimes it loads. A runtime's
presence and version come from package metadata; its own device list is asked only where
selection reads it (a GPU or NPU target), and `headframe detect` still asks every one."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from runtime.backend_table import runtimes
from runtime.cli import app as cli
from runtime.hardware import probe
from runtime.hardware.runtimes import probe_runtime_live
from runtime.profiles import DeviceProfile, match
from runtime.selection import Policy, resources_for, runtimes_selection_reads, select
from tests.support.paths import HOSTS
from tests.support.synthetic import MB, make_package_meta, make_variant

PRESENCE = """
import json, sys
from runtime.backend_table import runtimes
from runtime.hardware.runtimes import runtime_presence
infos = [runtime_presence(n) for n in runtimes()]
print(json.dumps({"imported": sorted(set(runtimes()) & set(sys.modules)),
                  "infos": [[i.name, i.available, i.version, i.queried] for i in infos]}))
"""


def test_presence_imports_no_runtime_and_agrees_with_the_live_probe() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PRESENCE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    data = json.loads(out)
    assert data["imported"] == []
    assert [i[0] for i in data["infos"]] == list(runtimes())
    for name, available, version, queried in data["infos"]:
        live = probe_runtime_live(name)
        assert not queried
        assert available == live.available, name
        if available:  # OpenVINO's own version string adds the build after the release
            assert version and live.version and live.version.startswith(version), name


def test_detect_still_asks_every_runtime_for_its_devices() -> None:
    out = CliRunner().invoke(cli, ["detect", "--json"])
    assert out.exit_code == 0, out.output
    found = {r["name"]: r for r in json.loads(out.stdout)["runtimes"]}
    assert list(found) == list(runtimes())
    assert all(r["queried"] for r in found.values())
    assert "CPUExecutionProvider" in found["onnxruntime"]["devices"]
    assert "CPU" in found["openvino"]["devices"]


def test_only_gpu_and_npu_targets_need_a_device_list(repo_profiles: list[DeviceProfile]) -> None:
    by_name = {p.name: p for p in repo_profiles}
    for cpu_only in ("generic-x86-64", "x86-64-avx2", "x86-64-avx512", "raspberry-pi"):
        assert runtimes_selection_reads(by_name[cpu_only]) == set(), cpu_only
    assert "onnxruntime" in runtimes_selection_reads(by_name["nvidia-gpu"])
    assert "openvino" in runtimes_selection_reads(by_name["intel-core-ultra"])


@pytest.mark.parametrize("host", sorted(p.name for p in HOSTS.iterdir() if p.is_dir()))
def test_selection_chooses_the_same_without_the_device_lists_it_does_not_read(
    host: str, repo_profiles: list[DeviceProfile]
) -> None:
    full = probe(HOSTS / host)
    profile = match(full, repo_profiles).profile
    reads = runtimes_selection_reads(profile)
    # what the daemon holds before any runtime is imported: presence, no devices
    presence = replace(
        full,
        runtimes=tuple(
            r if r.name in reads or not r.available else replace(r, devices=(), queried=False)
            for r in full.runtimes
        ),
    )
    variants = [
        make_variant("fp32", 400 * MB),
        make_variant("int8", 150 * MB, precision="int8"),
        make_variant("ir-fp16", 200 * MB, fmt="openvino", precision="fp16"),
        make_variant("q4", 100 * MB, fmt="gguf", precision="q4_0"),
        make_variant("gpu-only", 50 * MB, device_classes=("gpu",)),
        make_variant("npu-ir", 60 * MB, fmt="openvino", precision="int8", device_classes=("npu",)),
    ]
    pkg = make_package_meta()
    resources = resources_for(profile, full, None)
    with_lists = select(pkg, variants, profile, full, resources, Policy())
    without = select(pkg, variants, profile, presence, resources, Policy())
    assert without.to_dict() == with_lists.to_dict()
