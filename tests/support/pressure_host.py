"""A fake host tree whose memory, PSI, cgroup and thermal files a test rewrites over time:
the governor reads it as it would read /proc and /sys (``[governor] host_root``)."""

from __future__ import annotations

import os
from pathlib import Path

GIB = 1024**3


class PressureHost:
    def __init__(self, root: Path, total_bytes: int = 8 * GIB) -> None:
        self.root = root
        self.total = total_bytes
        self.memory(50.0)
        self.psi(0.0)
        self.zone(0, "x86_pkg_temp", 45.0, trip_c=100.0)

    def _write(self, host_path: str, text: str) -> None:
        path = self.root / host_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # the reader never sees half a file, as with the kernel's

    def memory(self, available_pct: float) -> None:
        """MemAvailable at ``available_pct`` of MemTotal."""
        total_kb = self.total // 1024
        avail_kb = int(total_kb * available_pct / 100)
        self._write(
            "/proc/meminfo",
            f"MemTotal:       {total_kb} kB\nMemFree:        {avail_kb // 2} kB\n"
            f"MemAvailable:   {avail_kb} kB\nBuffers:        1024 kB\n",
        )

    def psi(self, some_avg10: float) -> None:
        self._write(
            "/proc/pressure/memory",
            f"some avg10={some_avg10:.2f} avg60=0.00 avg300=0.00 total=12345\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )

    def zone(self, n: int, kind: str, temp_c: float, trip_c: float | None = None) -> None:
        base = f"/sys/class/thermal/thermal_zone{n}"
        self._write(f"{base}/type", f"{kind}\n")
        self._write(f"{base}/temp", f"{int(temp_c * 1000)}\n")
        if trip_c is not None:
            self._write(f"{base}/trip_point_0_type", "passive\n")
            self._write(f"{base}/trip_point_0_temp", f"{int(trip_c * 1000)}\n")
            self._write(f"{base}/trip_point_1_type", "active\n")  # a fan stage: not a limit
            self._write(f"{base}/trip_point_1_temp", "40000\n")

    def cgroup(
        self, path: str, limit: int | str, current: int, inactive_file: int | None = None
    ) -> None:
        """The daemon's cgroup v2 group; ``inactive_file``: the page cache the kernel can
        reclaim, in memory.stat (None: no memory.stat file)."""
        self._write("/proc/self/cgroup", f"0::{path}\n")
        base = f"/sys/fs/cgroup{path}"
        self._write(f"{base}/memory.max", f"{limit}\n")
        self._write(f"{base}/memory.current", f"{current}\n")
        if inactive_file is not None:
            stat = f"anon {current - inactive_file}\nfile {inactive_file}\n"
            self._write(f"{base}/memory.stat", stat + f"inactive_file {inactive_file}\n")
