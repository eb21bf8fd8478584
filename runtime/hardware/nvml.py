"""NVIDIA GPUs as NVML sees them (nvidia-ml-py): memory and compute capability.

Live, NVML is asked. The files under /proc and /sys do not say how much memory a card has,
so a fixture tree keeps NVML's answer in ``<root>/.headframe-nvml.toml``::

    [[gpus]]
    pci_address = "0000:00:06.0"
    name = "NVIDIA H200"
    memory_bytes = 150754820096
    compute_capability = "9.0"
    minor = 0
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runtime.hardware.fixture_files import read_fixture
from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import Accelerator

NVML_FIXTURE_FILE = ".headframe-nvml.toml"


@dataclass(frozen=True)
class NvmlGpu:
    pci_address: str  # "0000:41:00.0", lower case, the sysfs spelling
    name: str
    memory_bytes: int
    compute_capability: str
    minor: int | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def query_nvml() -> list[NvmlGpu]:
    """Every GPU NVML reports. Raises ImportError or pynvml.NVMLError when it cannot say."""
    pynvml = importlib.import_module("pynvml")
    pynvml.nvmlInit()
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            bus = _text(pynvml.nvmlDeviceGetPciInfo(handle).busId).lower()
            # NVML pads the domain to 8 digits ("00000000:41:00.0"); sysfs uses 4.
            domain, _, rest = bus.partition(":")
            major, minor_cc = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            try:
                minor: int | None = int(pynvml.nvmlDeviceGetMinorNumber(handle))
            except Exception:  # not supported on every platform; the node is then unknown
                minor = None
            gpus.append(
                NvmlGpu(
                    pci_address=f"{domain[-4:]}:{rest}",
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    compute_capability=f"{major}.{minor_cc}",
                    minor=minor,
                )
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


class _FixtureGpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pci_address: str = Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
    name: str
    memory_bytes: int = Field(ge=0)
    compute_capability: str
    minor: int | None = None


class _FixtureNvml(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpus: list[_FixtureGpu] = []


def nvml_from_fixture(fs: HostFS) -> list[NvmlGpu]:
    """What NVML said when the fixture tree was saved; empty when it kept no answer."""
    declared = read_fixture(fs, NVML_FIXTURE_FILE, _FixtureNvml)
    if declared is None:
        return []
    return [NvmlGpu(**g.model_dump()) for g in declared.gpus]


def _minor(device_paths: tuple[str, ...]) -> int | None:
    for path in device_paths:
        number = path.removeprefix("/dev/nvidia")
        if number != path and number.isdigit():
            return int(number)
    return None


def nvml_of(accelerators: tuple[Accelerator, ...]) -> list[NvmlGpu]:
    """NVML's part of a report, back from the accelerators it filled in (only NVML sets a
    compute capability); the inverse of ``merge_nvml`` for saving a fixture tree."""
    return [
        NvmlGpu(
            pci_address=acc.pci_address,
            name=acc.model,
            memory_bytes=acc.memory_bytes or 0,
            compute_capability=acc.compute_capability,
            minor=_minor(acc.device_paths),
        )
        for acc in accelerators
        if acc.vendor == "nvidia" and acc.compute_capability and acc.pci_address
    ]


def merge_nvml(
    accelerators: tuple[Accelerator, ...], gpus: list[NvmlGpu]
) -> tuple[Accelerator, ...]:
    """The PCI view with NVML's name, memory and compute capability filled in, by bus id."""
    by_bus = {g.pci_address: g for g in gpus}
    merged = []
    by_node = {f"/dev/nvidia{g.minor}": g.pci_address for g in gpus if g.minor is not None}
    for acc in accelerators:
        bus = (acc.pci_address or "").lower()
        if not bus and acc.vendor == "nvidia":  # seen only as /dev/nvidiaN: match by minor
            bus = next((by_node[p] for p in acc.device_paths if p in by_node), "")
        g = by_bus.pop(bus, None)
        if g is not None:
            acc = replace(
                acc,
                model=g.name,
                pci_address=g.pci_address,
                memory_bytes=g.memory_bytes,
                compute_capability=g.compute_capability,
            )
        merged.append(acc)
    for g in by_bus.values():  # NVML sees a GPU that sysfs did not (a trimmed container /sys)
        merged.append(
            Accelerator(
                kind="gpu",
                vendor="nvidia",
                model=g.name,
                memory_bytes=g.memory_bytes,
                pci_address=g.pci_address,
                compute_capability=g.compute_capability,
                device_paths=(f"/dev/nvidia{g.minor}",) if g.minor is not None else (),
            )
        )
    return tuple(merged)
