"""Hardware probe: ``probe(root="/") -> HardwareReport``. Reads files only; decides nothing.

Which inference runtimes to look for, and how to ask one what it offers once imported,
come from the backend table (runtime/backend_table.py, a foundation module): this room
sits below backends/ and never imports it.
May import: the foundation and config.
"""

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
