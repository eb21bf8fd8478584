"""Board facts: the device tree's model and compatible strings, and Jetson's L4T release."""

from __future__ import annotations

from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import BoardInfo


def probe_board(fs: HostFS) -> BoardInfo:
    # /proc/device-tree is a link to /sys/firmware/devicetree/base; fixtures may hold either.
    model = fs.read_line("/proc/device-tree/model") or fs.read_line(
        "/sys/firmware/devicetree/base/model"
    )
    raw = fs.read_text("/proc/device-tree/compatible") or fs.read_text(
        "/sys/firmware/devicetree/base/compatible"
    )
    compatible = tuple(c.strip() for c in (raw or "").split("\x00") if c.strip())
    if len(compatible) == 1 and "\n" in compatible[0]:
        # Hand-written fixtures sometimes use newlines instead of NULs; accept both.
        compatible = tuple(c.strip() for c in compatible[0].splitlines() if c.strip())
    return BoardInfo(
        model=model,
        compatible=compatible,
        tegra_release=fs.read_line("/etc/nv_tegra_release"),
    )
