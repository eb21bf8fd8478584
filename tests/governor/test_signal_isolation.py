"""Two governor faults (issue 25, item 16): one unparsable host value (a digit Python's
``isdigit`` accepts and ``int`` refuses, say) raised out of the whole sample and blinded
every signal; and with the default PSI thresholds (soft 20%, hard 60%, recovery margin
0.5 of the gap) the recovered edge was 20 - 20 = 0: the governor stepped back up only
at exactly 0.0. Each source is now read on its own, and the recovery margin of a signal
that rises under pressure is at most that fraction of its soft threshold."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.config.governor import GovernorSettings
from runtime.governor.policy import assess, thresholds
from runtime.governor.signals import Reading, SignalReader
from tests.support.pressure_host import PressureHost


@pytest.mark.parametrize(
    ("file", "text", "lost"),
    [
        ("proc/meminfo", "MemTotal: \u00b2 kB\nMemAvailable: 1 kB\n", "memory_available_pct"),
        ("proc/pressure/memory", "some avg10=1e999999 avg60=0\n", "psi_some_avg10"),
        ("sys/class/thermal/thermal_zone0/temp", "\u00b9\u00b2\n", "thermal_margin_c"),
    ],
)
def test_one_unparsable_value_blinds_only_its_own_signal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, file: str, text: str, lost: str
) -> None:
    PressureHost(tmp_path).cgroup("/system.slice/headframe.service", 1000, 500)
    (tmp_path / file).write_text(text)
    reader = SignalReader(tmp_path)
    with caplog.at_level(logging.WARNING, logger="governor"):
        signals = {r.signal for r in reader.read_host()}
        reader.read_host()
    want = {"memory_available_pct", "psi_some_avg10", "thermal_margin_c", "cgroup_headroom_pct"}
    assert signals == want - {lost}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # said once, not every sample


def test_a_garbled_cgroup_limit_blinds_only_the_cgroup_signal(tmp_path: Path) -> None:
    host = PressureHost(tmp_path)
    host.cgroup("/system.slice/headframe.service", "\u00b3", 500)
    signals = {r.signal for r in SignalReader(tmp_path).read_host()}
    assert signals == {"memory_available_pct", "psi_some_avg10", "thermal_margin_c"}


def _psi(value: float) -> list[Reading]:
    return [Reading("psi_some_avg10", value, "/proc/pressure/memory")]


def test_with_the_default_psi_thresholds_recovery_is_reachable() -> None:
    table = thresholds(GovernorSettings())
    # soft 20%: recovered at or below 10% (half of soft), not only at exactly 0.0
    assert assess(_psi(9.5), table).clear
    assert assess(_psi(0.3), table).clear
    assert not assess(_psi(15.0), table).clear
    assert assess(_psi(21.0), table).level == 1


def test_signals_that_fall_under_pressure_keep_their_margin() -> None:
    table = thresholds(GovernorSettings())
    mem = table["memory_available_pct"]
    assert mem.margin == pytest.approx(5.0)  # 0.5 x (15 - 5): recovered above 20%
    assert table["thermal_c"].margin == pytest.approx(5.0)  # 0.5 x (95 - 85), under 0.5 x 85
