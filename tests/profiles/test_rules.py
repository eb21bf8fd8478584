"""A profile's match rules against a hardware report (runtime/profiles/rules.py), as a
table: for each rule a profile sets, whether it holds on the box and the sentence
`headframe detect` prints for it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runtime.hardware.report import Accelerator, BoardInfo, HardwareReport
from runtime.profiles.profile import MatchRules
from runtime.profiles.rules import evaluate, l4t_release
from tests.support.synthetic import GB, intel_npu, make_report, nvidia_gpu

GIB = 2**30
# The box of tests.support.synthetic: x86_64, an Intel CPU with avx2 and sse4_2, 8 GB RAM.
PLAIN = make_report()
WITH_GPU = make_report(accelerators=[nvidia_gpu(16 * GB)])
TWO_NPUS = make_report(accelerators=[intel_npu(), intel_npu()])
NO_NVML = make_report(accelerators=[Accelerator("gpu", "nvidia", "Test GPU", None, ())])
RPI = replace(PLAIN, board=BoardInfo("Raspberry Pi 4 Model B Rev 1.4", ("raspberrypi,4-model-b",)))
JETSON = replace(PLAIN, board=BoardInfo(tegra_release="# R36 (release), REVISION: 3.0, GCID: 1"))


@pytest.mark.parametrize(
    ("rules", "report", "expected"),
    [
        pytest.param({}, PLAIN, [], id="no rule: nothing to say"),
        pytest.param({"arch": ["x86_64"]}, PLAIN, [("arch", True, "arch is x86_64")], id="arch"),
        pytest.param(
            {"arch": ["aarch64", "armv7l"]}, PLAIN,
            [("arch", False, "arch is x86_64, profile wants aarch64 or armv7l")], id="other arch",
        ),
        pytest.param(
            {"cpu_vendor": ["amd"]}, PLAIN,
            [("cpu_vendor", False, "CPU vendor is intel, profile wants amd")], id="cpu vendor",
        ),
        pytest.param(
            {"cpu_flags_all": ["avx2", "avx512f", "amx_tile"]}, PLAIN,
            [("cpu_flags_all", False, "CPU lacks avx512f, amx_tile")], id="flags all: lacks",
        ),
        pytest.param(
            {"cpu_flags_any": ["avx512f", "avx2"]}, PLAIN,
            [("cpu_flags_any", True, "CPU has avx2")], id="flags any: has one",
        ),
        pytest.param(
            {"cpu_flags_any": ["neon"]}, PLAIN,
            [("cpu_flags_any", False, "CPU has none of neon")], id="flags any: has none",
        ),
        pytest.param(
            {"gpu_vendor": ["nvidia"]}, PLAIN,
            [("gpu_vendor", False, "needs a GPU from nvidia; this host has: none")], id="no GPU",
        ),
        pytest.param(
            {"gpu_vendor": ["nvidia"]}, WITH_GPU,
            [("gpu_vendor", True, "GPU present: Test GPU (nvidia)")], id="GPU present",
        ),
        pytest.param(
            {"gpu_vendor": ["nvidia"], "gpu_min_memory_bytes": 8 * GIB}, WITH_GPU,
            [("gpu_vendor", True, "GPU present: Test GPU (nvidia)"),
             ("gpu_min_memory_bytes", True, "GPU memory 14.9 GiB >= 8.0 GiB (Test GPU)")],
            id="GPU memory enough",
        ),
        pytest.param(
            {"gpu_min_memory_bytes": 24 * GIB}, WITH_GPU,
            [("gpu_min_memory_bytes", False, "GPU memory 14.9 GiB < 24.0 GiB (Test GPU)")],
            id="GPU memory short",
        ),
        pytest.param(
            {"gpu_min_memory_bytes": 8 * GIB}, NO_NVML,
            [("gpu_min_memory_bytes", False,
              "needs 8.0 GiB GPU memory: GPU memory unknown (NVML not available)")],
            id="GPU memory unknown",
        ),
        pytest.param(
            {"npu_vendor": ["intel"]}, TWO_NPUS,
            [("npu_vendor", True, "NPU/TPU present: 2x Intel NPU (intel)")], id="two NPUs",
        ),
        pytest.param(
            {"npu_vendor": ["huawei", "rockchip"]}, WITH_GPU,
            [("npu_vendor", False,
              "needs an NPU/TPU from huawei or rockchip; this host has: none")],
            id="no NPU",
        ),
        pytest.param(
            {"min_memory_bytes": 16 * GIB, "max_memory_bytes": 32 * GIB}, PLAIN,
            [("min_memory_bytes", False, "RAM 7.5 GiB < 16.0 GiB"),
             ("max_memory_bytes", True, "RAM 7.5 GiB <= 32.0 GiB")],
            id="RAM bounds",
        ),
        pytest.param(
            {"board_model_any": ["Raspberry Pi 4*"],
             "board_compatible_any": ["RaspberryPi,4*"]}, RPI,
            [("board_compatible_any", True, "device tree is compatible with raspberrypi,4-model-b"),
             ("board_model_any", True, "board model is 'Raspberry Pi 4 Model B Rev 1.4'")],
            id="board globs, any case",
        ),
        pytest.param(
            {"board_compatible_any": ["rockchip,rk3588*"]}, PLAIN,
            [("board_compatible_any", False,
              "device tree is not compatible with rockchip,rk3588* (has: no device tree)")],
            id="no device tree",
        ),
        pytest.param(
            {"tegra": True}, PLAIN,
            [("tegra", False, "no /etc/nv_tegra_release (not a Jetson)")], id="not a Jetson",
        ),
        pytest.param(
            {"tegra": False}, JETSON,
            [("tegra", False, "Jetson (L4T R36.3.0); profile excludes Jetson")],
            id="a Jetson the profile excludes",
        ),
        pytest.param(
            {"device_paths_any": ["/dev/accel/accel*"]}, TWO_NPUS,
            [("device_paths_any", True, "device nodes present: /dev/accel/accel0")],
            id="device node from an accelerator",
        ),
        pytest.param(
            {"pci_ids_any": ["10de:*"]}, PLAIN,
            [("pci_ids_any", False, "no PCI device matches 10de:*")], id="no PCI match",
        ),
    ],
)  # fmt: skip
def test_each_rule_holds_or_says_why(
    rules: dict[str, Any], report: HardwareReport, expected: list[tuple[str, bool, str]]
) -> None:
    got = evaluate(MatchRules.model_validate(rules), report)
    assert [(r.rule, r.ok, r.text) for r in got] == expected


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("# R36 (release), REVISION: 3.0, GCID: 36191598", "L4T R36.3.0"),
        ("# R35 (release), REVISION: 4.1", "L4T R35.4.1"),
        ("something else", "something else"),
    ],
)
def test_l4t_release(line: str, shown: str) -> None:
    assert l4t_release(line) == shown
