"""The HardwareReport: what a box physically has, and what installed software can use.

Frozen dataclasses so that a report can be shared between threads and hashed into
decisions. ``to_dict()`` gives the JSON shape that ``headframe detect --json`` prints.
Hardware (what is there) and runtimes (what installed software can drive) are kept
apart on purpose: an NVIDIA card with no CUDA-enabled onnxruntime is still a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AcceleratorKind = Literal["gpu", "npu", "tpu"]


@dataclass(frozen=True)
class CpuInfo:
    arch: str  # "x86_64" or "aarch64" (uname -m vocabulary)
    model: str  # "Intel(R) Xeon(R) ..." or the Arm part name
    vendor: str  # "intel", "amd", "arm", ... lower case; "unknown" if not said
    cores: int  # logical CPUs
    flags: tuple[str, ...]  # x86 flags or Arm Features, sorted, lower case
    physical_cores: int | None = None  # distinct (package, core) pairs; None if not said


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    available_bytes: int | None = None
    cgroup_limit_bytes: int | None = None  # cgroup v2 memory.max when below MemTotal


@dataclass(frozen=True)
class Accelerator:
    kind: AcceleratorKind
    vendor: str  # "nvidia", "intel", "amd", "huawei", "hailo", "google", "rockchip"
    model: str
    memory_bytes: int | None = None
    device_paths: tuple[str, ...] = ()
    pci_address: str | None = None
    compute_capability: str | None = None  # NVIDIA "8.9", from NVML when live


@dataclass(frozen=True)
class PciDevice:
    """One PCI function as sysfs lists it; ids are 4 lower-case hex digits, class 6."""

    address: str  # "0000:41:00.0"
    vendor_id: str  # "10de"
    device_id: str  # "27b8"
    class_code: str  # "030200"

    @property
    def pci_id(self) -> str:
        return f"{self.vendor_id}:{self.device_id}"


@dataclass(frozen=True)
class BoardInfo:
    model: str | None = None  # /proc/device-tree/model
    compatible: tuple[str, ...] = ()  # /proc/device-tree/compatible entries
    tegra_release: str | None = None  # first line of /etc/nv_tegra_release


@dataclass(frozen=True)
class ThermalZone:
    name: str
    type: str
    temp_millicelsius: int | None


@dataclass(frozen=True)
class RuntimeInfo:
    """One inference runtime as installed: importable or not, and the devices it offers."""

    name: str  # "onnxruntime", "openvino", "llama_cpp"
    available: bool
    version: str | None = None
    devices: tuple[str, ...] = ()  # ORT providers, OpenVINO devices, ("cpu", "gpu") for llama
    reason: str | None = None  # why not available
    # False: found from package metadata alone (runtimes.runtime_presence), not imported,
    # so ``devices`` is not known yet; the daemon lists them only where selection reads them.
    queried: bool = True


@dataclass(frozen=True)
class HardwareReport:
    cpu: CpuInfo
    memory: MemoryInfo
    accelerators: tuple[Accelerator, ...] = ()
    board: BoardInfo = field(default_factory=BoardInfo)
    thermal: tuple[ThermalZone, ...] = ()
    runtimes: tuple[RuntimeInfo, ...] = ()
    root: str = "/"
    pci: tuple[PciDevice, ...] = ()  # every PCI function, so profiles can match unknown ids
    device_nodes: tuple[str, ...] = ()  # /dev entries seen (top level, dri/, accel/), host paths
    notes: tuple[str, ...] = ()  # what a live source could not tell, e.g. "nvml: no driver"
    # Seconds each source took, e.g. {"cpuinfo": 0.0004, "nvml": 0.03}; the bench reads it.
    timings: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    def runtime(self, name: str) -> RuntimeInfo | None:
        return next((r for r in self.runtimes if r.name == name), None)

    def accelerators_of(self, kind: str, vendor: str | None = None) -> list[Accelerator]:
        return [
            a
            for a in self.accelerators
            if a.kind == kind and (vendor is None or a.vendor == vendor)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: {"cpu": ..., "memory": ..., "accelerators": [...], ...}."""
        data = asdict(self)
        data["pci"] = [{**asdict(p), "pci_id": p.pci_id} for p in self.pci]
        return data
