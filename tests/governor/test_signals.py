"""The signal readers on fixture trees: values, trip points, missing and garbage files
(one warning each), and contradicting thresholds as config errors naming the keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.config import load_settings
from runtime.errors import ConfigError
from runtime.governor.signals import SignalReader
from tests.support.pressure_host import PressureHost

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def by_signal(reader: SignalReader) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in reader.read_host():
        out.setdefault(r.signal, []).append(r.value)
    return out


def test_memory_psi_thermal_and_cgroup_from_a_rewritten_tree(tmp_path: Path) -> None:
    host = PressureHost(tmp_path)
    reader = SignalReader(tmp_path)
    first = by_signal(reader)
    assert first["memory_available_pct"] == [pytest.approx(50.0, abs=0.01)]
    assert first["psi_some_avg10"] == [0.0]
    # The first throttling trip (passive, 100 C), not the fan stage at 40 C.
    assert first["thermal_margin_c"] == [pytest.approx(55.0)]
    assert "cgroup_headroom_pct" not in first  # no cgroup file: a plain box
    host.memory(4.0)
    host.psi(71.5)
    host.zone(1, "soc", 91.0)  # no trip point: judged by the absolute threshold
    host.cgroup("/system.slice/headframe.service", 1000, 900)
    now = by_signal(reader)
    assert now["memory_available_pct"] == [pytest.approx(4.0, abs=0.01)]
    assert now["psi_some_avg10"] == [71.5]
    assert now["thermal_c"] == [91.0]
    assert now["cgroup_headroom_pct"] == [pytest.approx(10.0)]
    host.cgroup("/system.slice/headframe.service", "max", 900)
    assert "cgroup_headroom_pct" not in by_signal(reader)  # "max": no limit, no signal
    # memory.current counts the page cache of every model file read; what the kernel can
    # drop (inactive_file) is not pressure, as for the kubelet's working set.
    host.cgroup("/system.slice/headframe.service", 1000, 990, inactive_file=600)
    assert by_signal(reader)["cgroup_headroom_pct"] == [pytest.approx(61.0)]


def test_a_real_fixture_host_reads_without_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="runtime.governor"):
        values = by_signal(SignalReader(FIXTURES / "intel-core-ultra-155h"))
    assert values["memory_available_pct"][0] > 0
    assert values.get("thermal_margin_c") or values.get("thermal_c")


def test_missing_and_garbage_files_are_skipped_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = PressureHost(tmp_path)
    (tmp_path / "proc/pressure/memory").unlink()
    (tmp_path / "proc/meminfo").write_text("MemTotal: lots\n\x00\xff garbage")
    (tmp_path / "sys/class/thermal/thermal_zone0/temp").write_text("EIO\n")
    reader = SignalReader(tmp_path)
    with caplog.at_level(logging.WARNING, logger="runtime.governor"):
        for _ in range(5):
            assert reader.read_host() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings  # meminfo, PSI, thermal: once each, not per sample
    assert any("meminfo" in w for w in warnings)
    assert any("pressure/memory" in w for w in warnings)
    caplog.clear()
    host.memory(30.0)  # the source comes back: read again, and said so
    with caplog.at_level(logging.INFO, logger="runtime.governor"):
        assert [r.signal for r in reader.read_host()] == ["memory_available_pct"]
    assert any("can be read again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        ("memory_soft_pct = 4\nmemory_hard_pct = 6", ("memory_soft_pct", "memory_hard_pct")),
        ("psi_soft_pct = 70\npsi_hard_pct = 50", ("psi_soft_pct", "psi_hard_pct")),
        ("thermal_soft_margin_c = 2", ("thermal_soft_margin_c", "thermal_hard_margin_c")),
        ("queue_soft = 40\nqueue_hard = 10", ("queue_soft", "queue_hard")),
    ],
)
def test_soft_beyond_hard_is_a_config_error_naming_the_keys(
    tmp_path: Path, section: str, keys: tuple[str, str]
) -> None:
    cfg = tmp_path / "headframe.toml"
    cfg.write_text(f"[governor]\n{section}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    for key in keys:
        assert f"governor.{key}" in e.value.message


def test_one_load_side_off_is_not_a_contradiction(tmp_path: Path) -> None:
    cfg = tmp_path / "headframe.toml"
    cfg.write_text("[governor]\nqueue_soft = 40\np95_hard_ms = 250\n")
    assert load_settings(cfg).governor.queue_soft == 40


def test_the_readme_governor_example_is_valid_settings(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b.split("```", 1)[0] for b in readme.split("```toml\n")[1:]
                 if b.startswith("[governor]"))  # fmt: skip
    cfg = tmp_path / "headframe.toml"
    cfg.write_text(block)
    governor = load_settings(cfg).governor
    assert governor.enabled and governor.hold_s == 60.0
