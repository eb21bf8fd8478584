"""Each fixture host under tests/fixtures/hosts/ picks its profile for the stated reasons.

A fixture tree says what it expects in its own expected.toml, so adding a hardware class is
one profile TOML and one fixture tree: this test finds the new tree without a code change.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from runtime.hardware import probe
from runtime.profiles import DeviceProfile, match
from tests.support.paths import HOSTS

FIXTURES = sorted(p for p in HOSTS.iterdir() if (p / "expected.toml").is_file())


def _expected(host: Path) -> dict[str, Any]:
    return tomllib.loads((host / "expected.toml").read_text())


@pytest.mark.parametrize("host", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_host_picks_its_profile(host: Path, repo_profiles: list[DeviceProfile]) -> None:
    want = _expected(host)
    report = probe(host)  # not "/", so no live enrichment
    result = match(report, repo_profiles)

    assert result.profile.name == want["profile"], result.reasons
    assert result.fallback is want.get("fallback", False)
    for reason in want["reasons"]:
        assert any(reason in r for r in result.reasons), (reason, result.reasons)
    assert report.cpu.arch == want["arch"]
    assert report.cpu.cores == want["cores"]
    if "model" in want:
        assert report.cpu.model == want["model"]
    assert set(want.get("flags_include", ())) <= set(report.cpu.flags)
    got = [
        {"kind": a.kind, "vendor": a.vendor, "model": a.model, "device_paths": list(a.device_paths)}
        for a in report.accelerators
    ]
    assert got == want["accelerators"]


@pytest.mark.parametrize("host", FIXTURES, ids=[p.name for p in FIXTURES])
def test_every_other_profile_says_why_not(host: Path, repo_profiles: list[DeviceProfile]) -> None:
    result = match(probe(host), repo_profiles)
    assert {c.name for c in result.candidates} == {p.name for p in repo_profiles}
    for c in result.candidates:
        assert c.reasons, f"{c.name} has no reason"
        if c.name != result.profile.name and not c.matched:
            assert not any(r == "chosen" for r in c.reasons)


def test_every_profile_has_a_fixture_host(repo_profiles: list[DeviceProfile]) -> None:
    covered = {_expected(h)["profile"] for h in FIXTURES}
    assert {p.name for p in repo_profiles} <= covered


def test_fixture_runtimes_file_describes_installed_software() -> None:
    report = probe(HOSTS / "xeon-nvidia-l4")
    ort = report.runtime("onnxruntime")
    assert ort is not None and ort.available
    assert "CUDAExecutionProvider" in ort.devices
    llama = report.runtime("llama_cpp")
    assert llama is not None and llama.devices == ("cpu", "gpu")


def test_runtime_missing_from_fixture_file_is_unavailable_with_reason() -> None:
    report = probe(HOSTS / "kunpeng-atlas-300i")
    ov = report.runtime("openvino")
    assert ov is not None and not ov.available
    assert ov.reason and "not listed" in ov.reason


def test_hardware_and_runtimes_are_kept_apart() -> None:
    # The L4 is a GPU whether or not any runtime can drive it.
    report = probe(HOSTS / "qemu-x86-64-minimal")
    assert report.accelerators == ()
    assert all(not r.available and r.reason for r in report.runtimes)
    l4 = probe(HOSTS / "xeon-nvidia-l4").accelerators_of("gpu", "nvidia")
    assert [a.pci_address for a in l4] == ["0000:00:03.0"]
    assert l4[0].memory_bytes is None  # only NVML can say, and fixtures are not live


@pytest.mark.parametrize(
    ("host", "logical", "physical"),
    [
        ("intel-core-ultra-155h", 22, 16),  # 6 P-cores with HT + 10 E-cores
        ("epyc-7313p-server", 32, 16),
        ("rock-5b-rk3588", 8, 8),
    ],
)
def test_physical_cores_count_hyperthreads_once(host: str, logical: int, physical: int) -> None:
    # The profiles' "intra_op = 0" means one thread per physical core.
    cpu = probe(HOSTS / host).cpu
    assert (cpu.cores, cpu.physical_cores) == (logical, physical)
