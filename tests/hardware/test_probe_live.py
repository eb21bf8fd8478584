"""The probe on this very machine, and on roots it cannot read."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.errors import ProbeError
from runtime.hardware import HardwareReport, probe
from runtime.profiles import load_profiles, match
from tests.support.paths import HOSTS
from tests.support.prereq import missing


def _proc_meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def _proc_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture(scope="module")
def live_report() -> HardwareReport:
    return probe("/")


def test_live_probe_reports_true_cores_memory_and_flags(live_report: HardwareReport) -> None:
    assert live_report.cpu.cores == os.cpu_count()
    assert live_report.memory.total_bytes == _proc_meminfo_total()
    assert set(live_report.cpu.flags) == _proc_flags()
    assert live_report.cpu.arch == platform.machine()


def test_live_probe_times_every_source(live_report: HardwareReport) -> None:
    for source in ("cpuinfo", "meminfo", "pci", "devices", "files_total", "live_total"):
        assert source in live_report.timings
    for name in ("onnxruntime", "openvino", "llama_cpp", "nvml"):
        assert name in live_report.timings
    assert [r.name for r in live_report.runtimes] == ["onnxruntime", "openvino", "llama_cpp"]


def test_live_runtimes_report_what_they_offer(live_report: HardwareReport) -> None:
    ort = live_report.runtime("onnxruntime")
    assert ort is not None and ort.available and "CPUExecutionProvider" in ort.devices
    ov = live_report.runtime("openvino")
    assert ov is not None and ov.available and "CPU" in ov.devices


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x86 profiles")
def test_live_x86_host_picks_the_avx2_or_avx512_profile(live_report: HardwareReport) -> None:
    result = match(live_report, load_profiles())
    flags = set(live_report.cpu.flags)
    if {"avx512f", "avx512bw", "avx512vl"} <= flags and not live_report.accelerators:
        assert result.profile.name == "x86-64-avx512"
    elif "avx2" in flags and not live_report.accelerators:
        assert result.profile.name == "x86-64-avx2"
    assert result.reasons


def test_live_nvidia_gpu_gets_its_memory_from_nvml_and_the_gpu_profile(
    live_report: HardwareReport,
) -> None:
    # Only a host with an NVIDIA card and its driver can run this; it ran on a lent H200
    # machine (bench/README.md, "On a real NVIDIA H200 machine"). Elsewhere it skips.
    gpus = live_report.accelerators_of("gpu", "nvidia")
    if not gpus or not Path("/proc/driver/nvidia").is_dir():
        pytest.skip("no NVIDIA GPU with its driver on this host")
    if any(n.startswith("nvml: not installed") for n in live_report.notes):
        missing("nvidia-ml-py is not installed (the [gpu] extra; make test installs it)")
    for gpu in gpus:
        assert gpu.memory_bytes and gpu.memory_bytes > 1 << 30, gpu
        assert gpu.compute_capability and gpu.compute_capability[0].isdigit(), gpu
        assert gpu.pci_address and gpu.device_paths, gpu
    result = match(live_report, load_profiles())
    assert result.profile.name in ("nvidia-gpu", "nvidia-jetson-orin"), result.reasons


def test_a_missing_library_is_a_fact_not_a_crash() -> None:
    # Run in a fresh interpreter where openvino and pynvml cannot be imported (as on a box
    # installed without those extras); setting a sys.modules entry to None blocks the import.
    code = (
        "import sys; sys.modules['openvino'] = None; sys.modules['pynvml'] = None\n"
        "from runtime.hardware import probe\n"
        "r = probe('/')\n"
        "ov = r.runtime('openvino')\n"
        "print(ov.available, '|', ov.reason)\n"
        "print([n for n in r.notes if n.startswith('nvml')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.startswith("False | not installed (pip install 'headframe[openvino]')")
    assert "nvml: not installed (pip install 'headframe[gpu]')" in out


def test_root_that_is_not_a_directory_is_a_probe_error(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="not a directory"):
        probe(tmp_path / "missing")


def test_tree_without_cpuinfo_is_a_probe_error(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    with pytest.raises(ProbeError, match=r"proc/cpuinfo: not readable"):
        probe(tmp_path)


def test_fixture_runtimes_file_with_a_typo_names_the_file(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "host"
    shutil.copytree(HOSTS / "raspberry-pi-4", root)
    (root / ".headframe-runtimes.toml").write_text('[onnxruntime]\nprovider = ["CPU"]\n')
    with pytest.raises(ProbeError, match=r"\.headframe-runtimes\.toml: onnxruntime\.provider"):
        probe(root)


def test_container_without_device_node_does_not_list_it(tmp_path: Path) -> None:
    # sysfs shows the NPU but /dev/accel was not passed into the container: no usable node.
    import shutil

    root = tmp_path / "host"
    shutil.copytree(HOSTS / "intel-core-ultra-155h", root)
    shutil.rmtree(root / "dev" / "accel")
    npu = probe(root).accelerators_of("npu", "intel")
    assert len(npu) == 1 and npu[0].device_paths == ()


def test_nvml_view_fills_memory_and_does_not_duplicate_gpus() -> None:
    # What NVML would add on the L4 box: memory and compute capability, joined by bus id;
    # and a GPU seen only as /dev/nvidia1 (no sysfs) joined by its minor number.
    from runtime.hardware.nvml import NvmlGpu, merge_nvml
    from runtime.hardware.report import Accelerator

    pci_view = probe(HOSTS / "xeon-nvidia-l4").accelerators
    node_only = Accelerator(
        "gpu", "nvidia", "NVIDIA GPU (from /dev/nvidia1)", None, ("/dev/nvidia1",)
    )
    gpus = [
        NvmlGpu("0000:00:03.0", "NVIDIA L4", 24 * 2**30, "8.9", 0),
        NvmlGpu("0000:00:05.0", "NVIDIA L4", 24 * 2**30, "8.9", 1),
    ]
    merged = merge_nvml((*pci_view, node_only), gpus)
    assert [(a.pci_address, a.memory_bytes, a.compute_capability) for a in merged] == [
        ("0000:00:03.0", 24 * 2**30, "8.9"),
        ("0000:00:05.0", 24 * 2**30, "8.9"),
    ]
    assert merged[1].device_paths == ("/dev/nvidia1",)


def test_fixture_probe_imports_no_runtime() -> None:
    # A fixture tree (live False) must not pay for, or depend on, importing the runtimes.
    code = (
        "import sys\n"
        "from runtime.hardware import probe\n"
        f"r = probe({str(HOSTS / 'xeon-nvidia-l4')!r})\n"
        "heavy = {'onnxruntime', 'openvino', 'llama_cpp', 'pynvml'} & set(sys.modules)\n"
        "print(sorted(heavy), r.runtime('onnxruntime').available)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[] True"
