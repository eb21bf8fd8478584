"""NVIDIA GPUs as NVML sees them (nvidia-ml-py): memory and compute capability.

Live only: the files under /proc and /sys do not say how much memory a card has.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any

from runtime.hardware.report import Accelerator


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
