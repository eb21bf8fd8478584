"""The service unit: systemd accepts it, rates it hardened (exposure <= 2.0), and it keeps
the promises docs/packaging.md makes (notify + watchdog, restart limits, credentials, the
device allow-list)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.packaging.unitfile import UNIT, parse_unit, service
from tests.support.prereq import need_tool

MAX_EXPOSURE = 2.0

needs_systemd_analyze = pytest.mark.usefixtures("systemd_analyze")


@pytest.fixture
def systemd_analyze() -> None:
    need_tool("systemd-analyze")


def _unit_with_real_exec(tmp_path: Path) -> Path:
    """The unit verbatim except ExecStart, pointed at this checkout's headframe: verify
    insists that the binary exists, and /usr/bin/headframe only does once the package is
    installed (test_deb.py verifies the installed unit as shipped)."""
    headframe = Path(sys.executable).parent / "headframe"
    assert headframe.exists(), headframe
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/usr/bin/headframe", str(headframe)))
    return copy


def exposure(unit: Path) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out.stdout)
    assert match, f"no exposure in systemd-analyze output:\n{out.stdout}\n{out.stderr}"
    return float(match.group(1))


def verify(unit: Path) -> str:
    """systemd-analyze verify's complaints; '' when it has none (it exits 0 on some)."""
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    complaints = (out.stdout + out.stderr).strip()
    return complaints if complaints or out.returncode == 0 else f"exit {out.returncode}"


@needs_systemd_analyze
def test_systemd_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert verify(_unit_with_real_exec(tmp_path)) == ""


@needs_systemd_analyze
def test_security_exposure_is_at_most_two(tmp_path: Path) -> None:
    level = exposure(_unit_with_real_exec(tmp_path))
    assert level <= MAX_EXPOSURE, f"exposure {level} > {MAX_EXPOSURE}"


@needs_systemd_analyze
def test_exposure_check_catches_a_weakened_unit(tmp_path: Path) -> None:
    # The gate must be able to fail: strip the sandbox and the score must cross the line.
    weak = tmp_path / "weak.service"
    keep = ("[", "Type=", "ExecStart=", "User=", "Description=")
    lines = [
        line
        for line in _unit_with_real_exec(tmp_path).read_text().splitlines()
        if line.startswith(keep)
    ]
    weak.write_text("\n".join(lines) + "\n")
    assert exposure(weak) > MAX_EXPOSURE


def test_lifecycle_settings() -> None:
    unit = parse_unit()
    svc = unit["Service"]
    assert svc["Type"] == ["notify"]
    assert svc["WatchdogSec"] and svc["WatchdogSec"][0] not in ("0", "infinity")
    assert svc["Restart"] == ["on-failure"]
    assert "StartLimitIntervalSec" in unit["Unit"] and "StartLimitBurst" in unit["Unit"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["User"] == ["headframe"]
    for kind in ("State", "Cache", "Configuration"):
        assert svc[f"{kind}Directory"] == ["headframe"]
    assert "LogsDirectory" not in svc  # logs go to the journal; nothing writes a log file
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_hardening_list_from_the_issue() -> None:
    svc = service()
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert svc.get(key) == [value], key
    assert svc["SystemCallFilter"][0] == "@system-service"


def test_devices_are_exactly_the_accelerators() -> None:
    svc = service()
    # PrivateDevices is off only so that these nodes stay reachable.
    assert svc["PrivateDevices"] == ["no"]
    assert svc["DevicePolicy"] == ["closed"]
    allowed = {entry.split()[0] for entry in svc["DeviceAllow"]}
    # /dev/dri/*, /dev/accel/*, /dev/nvidia*, /dev/davinci* by their /proc/devices groups.
    assert allowed == {"char-drm", "char-accel", "char-nvidia*", "char-davinci*"}


def test_secrets_come_through_credentials() -> None:
    svc = service()
    loaded = dict(entry.split(":", 1) for entry in svc["LoadCredential"])
    assert loaded == {
        "api-tokens": "/etc/headframe/credentials/api-tokens",
        "mqtt-password": "/etc/headframe/credentials/mqtt-password",
    }
    # A missing secret file must not stop the service: each has a (blank) fallback.
    fallbacks = {entry.split(":", 1)[0] for entry in svc["SetCredential"]}
    assert fallbacks == set(loaded)


def test_memory_ceiling_is_set_and_is_the_documented_default() -> None:
    (value,) = service()["MemoryMax"]
    # A share of RAM (the unit runs on boxes of any size), leaving the OS and broker room.
    assert re.fullmatch(r"\d{1,2}%", value), value
    assert 50 <= int(value[:-1]) <= 90, value
    docs = (UNIT.parents[1] / "docs" / "packaging.md").read_text()
    assert f"`MemoryMax={value}`" in docs  # the default the docs promise is the one shipped
    assert "systemctl edit headframe" in docs.split("### Memory ceiling")[1]  # and the drop-in
