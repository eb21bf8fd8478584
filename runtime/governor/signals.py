"""The governor's inputs: the host's memory, PSI, cgroup, thermal and GPU files, and the
service's queues and latencies, as plain ``Reading``s.

Every file is read through ``HostFS(host_root)``, so a fixture tree that a test rewrites
drives the governor as the real /proc and /sys would. BLOCKING (file reads, NVML): the
controller calls ``SignalReader.read_host`` on a worker thread, never on the event loop.
A source that is missing or unreadable is skipped with ONE warning (a box without PSI or
thermal zones still works), and only that source: each is read on its own; the warning
is said again only after the source came back.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.hardware.hostfs import HostFS
from runtime.hardware.memory import parse_meminfo
from runtime.hardware.thermal import probe_thermal

log = logging.getLogger(__name__)

# Trip types that mean "the SoC is about to throttle or stop"; "active" trips are fan
# stages (often at 40-50 C) and would put a healthy box under pressure all day.
THROTTLE_TRIPS = ("passive", "hot", "critical")


@dataclass(frozen=True)
class Reading:
    """One signal's value now. ``signal`` names the thresholds that judge it (policy.py);
    ``source`` says where it came from (a zone, a GPU, an application)."""

    signal: str
    value: float
    source: str = ""
    app: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "value": round(self.value, 3), "source": self.source,
                "app": self.app}  # fmt: skip


class StatsView(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """Per application: ``p95_ms`` among others (runtime.service.stats.ServiceStats)."""


class ServiceLoad(Protocol):
    """What the governor reads of the inference service: queues and latencies."""

    @property
    def stats(self) -> StatsView: ...

    def queue_depths(self) -> dict[str, int]: ...


def load_readings(service: ServiceLoad) -> list[Reading]:
    """Queue depth and p95 latency per application. Cheap; read on the event loop, where
    the service's dictionaries change."""
    readings = [
        Reading("queue", float(depth), f"{app} queue", app)
        for app, depth in sorted(service.queue_depths().items())
    ]
    for app, doc in sorted(service.stats.snapshot().items()):
        p95 = doc.get("p95_ms")
        if p95 is not None:
            readings.append(Reading("p95_ms", float(p95), f"{app} p95", app))
    return readings


def first_trip_c(fs: HostFS, zone: str) -> float | None:
    """The lowest throttling trip point of ``zone`` in C (None: the zone declares none)."""
    base = f"/sys/class/thermal/{zone}"
    trips: list[float] = []
    for name in fs.listdir(base):
        if not (name.startswith("trip_point_") and name.endswith("_type")):
            continue
        kind = fs.read_line(f"{base}/{name}")
        temp = fs.read_line(f"{base}/{name.removesuffix('_type')}_temp")
        if kind in THROTTLE_TRIPS and temp and temp.lstrip("-").isdigit() and int(temp) > 0:
            trips.append(int(temp) / 1000)
    return min(trips) if trips else None


class SignalReader:
    """Reads the host's pressure signals under ``host_root``; keeps which sources it has
    warned about. One per governor; ``read_host`` from one thread at a time."""

    def __init__(self, host_root: str | Any = "/", *, gpu: bool = True) -> None:
        self.fs = HostFS(host_root)
        self.gpu = gpu
        self._warned: set[str] = set()
        self._nvml: Any = None  # pynvml once initialised; False when there is none

    def _missing(self, source: str, why: str) -> None:
        if source not in self._warned:
            self._warned.add(source)
            log.warning("%s; that signal is skipped until it can be read", why)

    def _back(self, source: str) -> None:
        if source in self._warned:
            self._warned.discard(source)
            log.info("%s can be read again", source)

    def read_host(self) -> list[Reading]:
        """Every host signal that can be read now (blocking). Each source is read on its
        own: a value one of them cannot parse skips that source (one warning), never the
        others, which a single exception out of the whole sample did."""
        readings: list[Reading] = []
        parts = (
            ("meminfo", self._memory), ("cgroup", self._cgroup), ("psi", self._psi),
            ("thermal", self._thermal), ("nvml", self._gpus),
        )  # fmt: skip
        for source, part in parts:
            try:
                readings += part()
            except Exception as e:  # a host file's value no parser expected
                self._missing(source, f"{source}: a value could not be read ({e})")
        return readings

    def _memory(self) -> list[Reading]:
        values = parse_meminfo(self.fs.read_text("/proc/meminfo") or "")
        total, available = values.get("MemTotal"), values.get("MemAvailable")
        if not total or available is None:
            self._missing(
                "meminfo", f"{self.fs.path('/proc/meminfo')} has no MemTotal/MemAvailable"
            )
            return []
        self._back("meminfo")
        return [Reading("memory_available_pct", 100.0 * available / total, "MemAvailable")]

    def _cgroup(self) -> list[Reading]:
        # cgroup v2: "0::/system.slice/headframe.service"; v1 lines have controllers.
        own = next(
            (ln[3:] for ln in (self.fs.read_text("/proc/self/cgroup") or "").splitlines()
             if ln.startswith("0::")), None,
        )  # fmt: skip
        if own is None:
            return []  # no cgroup v2 here: a plain box, not a fault
        base = "/sys/fs/cgroup" + ("" if own.strip() == "/" else own.strip())
        limit = self.fs.read_line(f"{base}/memory.max")
        current = self.fs.read_line(f"{base}/memory.current")
        if limit is None or limit == "max":
            return []  # no limit set: the host's memory is the bound
        if not (limit.isdigit() and current and current.isdigit() and int(limit) > 0):
            self._missing("cgroup", f"{self.fs.path(base)} memory.max/current are unreadable")
            return []
        self._back("cgroup")
        # memory.current includes the page cache of every file read (the models); the
        # inactive part is dropped before any OOM, so it is not pressure: the working set,
        # as the kubelet counts it. A group without memory.stat is judged on current.
        stat = self.fs.read_text(f"{base}/memory.stat") or ""
        inactive = next(
            (int(v) for k, _, v in (ln.partition(" ") for ln in stat.splitlines())
             if k == "inactive_file" and v.strip().isdigit()), 0,
        )  # fmt: skip
        working = max(int(current) - inactive, 0)
        headroom = 100.0 * (int(limit) - working) / int(limit)
        return [Reading("cgroup_headroom_pct", max(headroom, 0.0), f"cgroup {own.strip()}")]

    def _psi(self) -> list[Reading]:
        text = self.fs.read_text("/proc/pressure/memory")
        for line in (text or "").splitlines():
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            if line.startswith("some ") and "avg10" in fields:
                try:
                    value = float(fields["avg10"])
                except ValueError:
                    break
                if not math.isfinite(value):
                    break
                self._back("psi")
                return [Reading("psi_some_avg10", value, "/proc/pressure/memory")]
        self._missing("psi", f"{self.fs.path('/proc/pressure/memory')} has no 'some avg10'")
        return []

    def _thermal(self) -> list[Reading]:
        readings: list[Reading] = []
        for zone in probe_thermal(self.fs):
            if zone.temp_millicelsius is None or not -40_000 < zone.temp_millicelsius < 200_000:
                continue  # a sensor that answers EIO or nonsense is not a temperature
            temp = zone.temp_millicelsius / 1000
            trip = first_trip_c(self.fs, zone.name)
            source = f"{zone.name} ({zone.type}) {temp:.1f} C"
            if trip is not None:
                readings.append(
                    Reading("thermal_margin_c", trip - temp, f"{source}, trip {trip:.0f} C")
                )
            else:
                readings.append(Reading("thermal_c", temp, source))
        if not readings:
            self._missing(
                "thermal", f"no readable thermal zone under {self.fs.path('/sys/class/thermal')}"
            )
        else:
            self._back("thermal")
        return readings

    def _gpus(self) -> list[Reading]:
        """NVIDIA GPUs through NVML, on a live host only (a fixture tree has no driver)."""
        if not self.gpu or not self.fs.is_live or self._nvml is False:
            return []
        if self._nvml is None:
            try:
                pynvml = importlib.import_module("pynvml")
                pynvml.nvmlInit()
            except Exception:  # no package or no driver: not a GPU box, nothing to say
                self._nvml = False
                return []
            self._nvml = pynvml
        nv = self._nvml
        readings: list[Reading] = []
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                mem = nv.nvmlDeviceGetMemoryInfo(handle)
                temp = nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)
                readings.append(
                    Reading("gpu_memory_free_pct", 100.0 * mem.free / mem.total, f"gpu{i}")
                )
                readings.append(Reading("gpu_c", float(temp), f"gpu{i}"))
        except Exception as e:
            self._missing("nvml", f"NVML stopped answering ({e})")
            return []
        self._back("nvml")
        return readings

    def close(self) -> None:
        if self._nvml:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
