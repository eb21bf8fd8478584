"""Profile matching: ties, fallbacks, and profile files that are wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.errors import ConfigError
from runtime.hardware import probe
from runtime.profiles import DeviceProfile, load_profiles, match, profile_by_name
from tests.support.paths import HOSTS

X86_AVX2 = HOSTS / "epyc-7313p-server"
ARM_UNKNOWN = HOSTS / "nxp-imx8mp-evk"


def test_tie_on_priority_goes_to_the_more_specific_profile(
    write_profile: Callable[..., Path],
) -> None:
    write_profile("broad", 50, 'arch = ["x86_64"]')
    path = write_profile("narrow", 50, 'arch = ["x86_64"]\ncpu_flags_all = ["avx2"]')
    result = match(probe(X86_AVX2), load_profiles(path.parent))
    assert result.profile.name == "narrow"
    assert any("more specific rules (2 > 1)" in r for r in result.reasons)
    broad = next(c for c in result.candidates if c.name == "broad")
    assert broad.matched and any("lost to 'narrow'" in r for r in broad.reasons)


def test_full_tie_goes_to_the_name_that_sorts_first_and_says_so(
    write_profile: Callable[..., Path],
) -> None:
    write_profile("zulu", 50, 'arch = ["x86_64"]')
    path = write_profile("alpha", 50, 'arch = ["x86_64"]')
    result = match(probe(X86_AVX2), load_profiles(path.parent))
    assert result.profile.name == "alpha"
    assert any("'alpha' sorts before 'zulu' by name" in r for r in result.reasons)
    # Deterministic whatever the order the profiles come in.
    reordered = list(reversed(load_profiles(path.parent)))
    assert match(probe(X86_AVX2), reordered).profile.name == "alpha"


def test_higher_priority_beats_more_specific(write_profile: Callable[..., Path]) -> None:
    write_profile("specific", 10, 'arch = ["x86_64"]\ncpu_flags_all = ["avx2", "fma"]')
    path = write_profile("important", 90, 'arch = ["x86_64"]')
    result = match(probe(X86_AVX2), load_profiles(path.parent))
    assert result.profile.name == "important"
    assert any("higher priority (90 > 10)" in r for r in result.reasons)


def test_unknown_arm_board_falls_back_to_generic_arm64(repo_profiles: list[DeviceProfile]) -> None:
    result = match(probe(ARM_UNKNOWN), repo_profiles)
    assert result.profile.name == "generic-arm64"
    assert result.fallback
    assert "falling back to the generic profile for aarch64" in result.reasons[0]
    rk = next(c for c in result.candidates if c.name == "rockchip-rk3588")
    assert not rk.matched
    assert any("not compatible with rockchip,rk3588*" in r for r in rk.reasons)


def test_no_generic_profile_for_the_arch_is_a_clear_error(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("x86-only", 10, 'arch = ["x86_64"]', 'generic_for_arch = "x86_64"')
    with pytest.raises(ConfigError, match="generic_for_arch = 'aarch64'"):
        match(probe(ARM_UNKNOWN), load_profiles(path.parent))


def test_typo_in_a_profile_names_the_file_and_the_key(write_profile: Callable[..., Path]) -> None:
    path = write_profile("typo", 10, 'arch = ["x86_64"]\ncpu_flag_all = ["avx2"]')
    with pytest.raises(ConfigError) as err:
        load_profiles(path.parent)
    assert str(path) in err.value.message
    assert "match.cpu_flag_all" in err.value.message


def test_unknown_precision_and_backend_are_rejected(write_profile: Callable[..., Path]) -> None:
    path = write_profile("bad", 10, extra='precisions = ["in8"]')
    path.write_text(path.read_text().replace('precisions = ["fp32"]\n', ""))
    with pytest.raises(ConfigError, match=r"precisions: .*unknown precision \['in8'\]"):
        load_profiles(path.parent)
    path.write_text(path.read_text().replace('["in8"]', '["int8"]').replace('"onnx"', '"tvm"'))
    with pytest.raises(ConfigError, match=r"bad\.toml: targets\.0\.backend"):
        load_profiles(path.parent)


def test_broken_toml_and_duplicate_names_are_errors(write_profile: Callable[..., Path]) -> None:
    path = write_profile("one")
    (path.parent / "two.toml").write_text(path.read_text())
    with pytest.raises(ConfigError, match=r"two\.toml: name: 'one' is also used by .*one\.toml"):
        load_profiles(path.parent)
    (path.parent / "two.toml").write_text("name = [unclosed\n")
    with pytest.raises(ConfigError, match=r"two\.toml: not valid TOML"):
        load_profiles(path.parent)


def test_empty_or_missing_profiles_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no device profiles"):
        load_profiles(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_profiles(tmp_path / "nope")


def test_profile_by_name_lists_the_known_names(repo_profiles: list[DeviceProfile]) -> None:
    assert profile_by_name(repo_profiles, "nvidia-gpu").memory_source == "vram"
    with pytest.raises(ConfigError, match=r"known: .*generic-arm64"):
        profile_by_name(repo_profiles, "nvidia-gpus")


def test_match_rules_on_pci_ids_and_device_nodes_need_no_code(
    write_profile: Callable[..., Path],
) -> None:
    # A hardware class headframe's code knows nothing about: matched by its PCI id and node.
    write_profile("generic", 0, 'arch = ["aarch64"]', 'generic_for_arch = "aarch64"')
    path = write_profile(
        "imx-galcore", 40, 'device_paths_any = ["/dev/galcore"]\nboard_model_any = ["NXP i.MX8*"]'
    )
    result = match(probe(ARM_UNKNOWN), load_profiles(path.parent))
    assert result.profile.name == "imx-galcore"
    assert "device nodes present: /dev/galcore" in result.reasons
    path = write_profile("ascend-by-id", 50, 'pci_ids_any = ["19e5:d1*"]')
    result = match(probe(HOSTS / "kunpeng-atlas-300i"), load_profiles(path.parent))
    assert result.profile.name == "ascend-by-id"
    assert "PCI devices present: 19e5:d100" in result.reasons


def test_gpu_memory_rule_says_when_memory_is_unknown(write_profile: Callable[..., Path]) -> None:
    write_profile("generic", 0, 'arch = ["x86_64"]', 'generic_for_arch = "x86_64"')
    path = write_profile("big-gpu", 50, "gpu_min_memory_bytes = 17179869184")
    result = match(probe(HOSTS / "xeon-nvidia-l4"), load_profiles(path.parent))
    assert result.profile.name == "generic"
    big = next(c for c in result.candidates if c.name == "big-gpu")
    assert big.reasons == ["needs 16.0 GiB GPU memory: GPU memory unknown (NVML not available)"]


def test_a_target_no_backend_can_honour_is_rejected(write_profile: Callable[..., Path]) -> None:
    path = write_profile("npu-llama", 10, extra="")
    path.write_text(
        path.read_text()
        .replace('backend = "onnx"', 'backend = "llama"')
        .replace('device = "cpu"', 'device = "npu"')
    )
    with pytest.raises(ConfigError, match=r"npu-llama\.toml: targets\.0: .*not npu"):
        load_profiles(path.parent)
