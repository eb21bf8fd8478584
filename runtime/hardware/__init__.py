"""Hardware probe: ``probe(root="/") -> HardwareReport``. Reads files only; decides nothing."""

from runtime.hardware.probe import probe
from runtime.hardware.report import (
    Accelerator,
    BoardInfo,
    CpuInfo,
    HardwareReport,
    MemoryInfo,
    PciDevice,
    RuntimeInfo,
    ThermalZone,
)

__all__ = [
    "Accelerator",
    "BoardInfo",
    "CpuInfo",
    "HardwareReport",
    "MemoryInfo",
    "PciDevice",
    "RuntimeInfo",
    "ThermalZone",
    "probe",
]
