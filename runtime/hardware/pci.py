"""PCI functions from /sys/bus/pci/devices/*/{vendor,device,class}."""

from __future__ import annotations

from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import PciDevice

VENDORS = {
    "10de": "nvidia",
    "8086": "intel",
    "1002": "amd",
    "19e5": "huawei",
    "1e60": "hailo",
    "1ac1": "google",
    "1d0f": "amazon",
}

CLASS_DISPLAY = "03"  # 0300 VGA, 0302 3D controller, 0380 other display
CLASS_ACCELERATOR = "12"  # processing accelerator (Intel NPU, Ascend, Gaudi)


def _hex(text: str | None, width: int) -> str | None:
    if not text:
        return None
    value = text.strip().lower().removeprefix("0x")
    if not value or any(c not in "0123456789abcdef" for c in value):
        return None
    return value.zfill(width)[-width:]


def probe_pci(fs: HostFS) -> tuple[PciDevice, ...]:
    devices: list[PciDevice] = []
    # Plain sort: bus addresses are fixed-width hex, which natural sort would misorder.
    for address in sorted(fs.listdir("/sys/bus/pci/devices")):
        base = f"/sys/bus/pci/devices/{address}"
        vendor = _hex(fs.read_line(f"{base}/vendor"), 4)
        device = _hex(fs.read_line(f"{base}/device"), 4)
        klass = _hex(fs.read_line(f"{base}/class"), 6)
        if vendor and device and klass:
            devices.append(PciDevice(address, vendor, device, klass))
    return tuple(devices)
