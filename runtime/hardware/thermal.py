"""Thermal zones under /sys/class/thermal: the governor's input, reported at start-up."""

from __future__ import annotations

from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import ThermalZone


def probe_thermal(fs: HostFS) -> tuple[ThermalZone, ...]:
    zones: list[ThermalZone] = []
    for name in fs.listdir("/sys/class/thermal"):
        if not name.startswith("thermal_zone"):
            continue
        base = f"/sys/class/thermal/{name}"
        temp = fs.read_line(f"{base}/temp")
        zones.append(
            ThermalZone(
                name=name,
                type=fs.read_line(f"{base}/type") or "unknown",
                # Reading temp fails with EIO/ENODATA on some sensors; that is "unknown", not 0.
                temp_millicelsius=int(temp) if temp and temp.lstrip("-").isdigit() else None,
            )
        )
    return tuple(zones)
