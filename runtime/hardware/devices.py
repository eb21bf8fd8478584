"""Accelerators: PCI functions, /dev nodes and board facts turned into GPUs, NPUs and TPUs.

Sources: the PCI list (pci.py), /proc/driver/nvidia/gpus/*/information, the device nodes
/dev/nvidia*, /dev/dri/renderD*, /dev/accel/accel* (Intel NPU), /dev/davinci* (Huawei
Ascend), /dev/hailo*, /dev/apex_* (Coral), and the device tree for SoCs whose
accelerators are not on PCI (Jetson's integrated GPU, Rockchip's NPU). A node is only
listed when it exists under /dev: a container that sees the card in sysfs but was not
given its node cannot use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch

from runtime.hardware.hostfs import HostFS
from runtime.hardware.pci import CLASS_ACCELERATOR, CLASS_DISPLAY, VENDORS
from runtime.hardware.report import Accelerator, AcceleratorKind, BoardInfo, PciDevice

# PCI ids named here so the report says "NVIDIA L4", not "10de:27b8". An id missing here is
# still found (by class and vendor); it just gets a generic name.
KNOWN_PCI: dict[str, tuple[AcceleratorKind, str]] = {
    "10de:1eb8": ("gpu", "NVIDIA T4"),
    "10de:20b5": ("gpu", "NVIDIA A100 80GB PCIe"),
    "10de:20f1": ("gpu", "NVIDIA A100 PCIe 40GB"),
    "10de:2204": ("gpu", "NVIDIA GeForce RTX 3090"),
    "10de:2230": ("gpu", "NVIDIA RTX A6000"),
    "10de:2330": ("gpu", "NVIDIA H100 80GB HBM3"),
    "10de:2331": ("gpu", "NVIDIA H100 PCIe"),
    "10de:2335": ("gpu", "NVIDIA H200"),
    "10de:2684": ("gpu", "NVIDIA GeForce RTX 4090"),
    "10de:26b5": ("gpu", "NVIDIA L40"),
    "10de:26b9": ("gpu", "NVIDIA L40S"),
    "10de:27b8": ("gpu", "NVIDIA L4"),
    "10de:28b0": ("gpu", "NVIDIA RTX 2000 Ada Generation"),
    "8086:46a6": ("gpu", "Intel Iris Xe Graphics (Alder Lake-P)"),
    "8086:46d1": ("gpu", "Intel UHD Graphics (Alder Lake-N)"),
    "8086:56a0": ("gpu", "Intel Arc A770"),
    "8086:7d55": ("gpu", "Intel Arc Graphics (Meteor Lake)"),
    "8086:9a49": ("gpu", "Intel Iris Xe Graphics (Tiger Lake)"),
    "8086:a7a0": ("gpu", "Intel Iris Xe Graphics (Raptor Lake-P)"),
    "8086:7d1d": ("npu", "Intel AI Boost NPU (Meteor Lake)"),
    "8086:ad1d": ("npu", "Intel AI Boost NPU (Arrow Lake)"),
    "8086:643e": ("npu", "Intel AI Boost NPU (Lunar Lake)"),
    "19e5:d100": ("npu", "Huawei Ascend 310"),
    "19e5:d500": ("npu", "Huawei Ascend 310P"),
    "19e5:d801": ("npu", "Huawei Ascend 910"),
    "1e60:2864": ("npu", "Hailo-8"),
    "1ac1:089a": ("tpu", "Google Coral Edge TPU"),
}

# Per vendor and kind: the /dev nodes a device of that kind is driven through.
_NODE_GLOBS: dict[tuple[str, AcceleratorKind], str] = {
    ("nvidia", "gpu"): "/dev/nvidia[0-9]*",
    ("intel", "gpu"): "/dev/dri/renderD*",
    ("amd", "gpu"): "/dev/dri/renderD*",
    ("intel", "npu"): "/dev/accel/accel*",
    ("huawei", "npu"): "/dev/davinci[0-9]*",
    ("hailo", "npu"): "/dev/hailo*",
    ("google", "tpu"): "/dev/apex_*",
}

_NODE_NAMES = {
    "nvidia": "NVIDIA GPU",
    "intel": "Intel NPU",
    "huawei": "Huawei Ascend NPU",
    "hailo": "Hailo NPU",
    "google": "Google Coral Edge TPU",
    "amd": "AMD GPU",
}

# sysfs subdirectories of a PCI device that name its /dev node, and where that node lives.
_SYSFS_NODE_DIRS = (
    ("drm", "/dev/dri/", "renderD*"),
    ("accel", "/dev/accel/", "accel*"),
    ("apex", "/dev/", "apex_*"),
    ("hailo_chardev", "/dev/", "hailo*"),
)

# SoC accelerators that are not PCI devices, recognised by a device-tree compatible string.
_SOC: tuple[tuple[str, AcceleratorKind, str, str, tuple[str, ...]], ...] = (
    ("nvidia,tegra234", "gpu", "nvidia", "NVIDIA Orin integrated GPU (Ampere)",
     ("/dev/nvgpu/igpu0/ctrl", "/dev/nvhost-ctrl-gpu")),
    ("nvidia,tegra194", "gpu", "nvidia", "NVIDIA Xavier integrated GPU (Volta)",
     ("/dev/nvhost-ctrl-gpu",)),
    ("nvidia,tegra210", "gpu", "nvidia", "NVIDIA Tegra X1 integrated GPU (Maxwell)",
     ("/dev/nvhost-ctrl-gpu",)),
    ("rockchip,rk3588*", "npu", "rockchip", "Rockchip RK3588 NPU", ()),
)  # fmt: skip


@dataclass
class _Draft:
    kind: AcceleratorKind
    vendor: str
    model: str
    pci: PciDevice | None = None
    paths: list[str] = field(default_factory=list)

    def freeze(self) -> Accelerator:
        return Accelerator(
            kind=self.kind,
            vendor=self.vendor,
            model=self.model,
            device_paths=tuple(self.paths),
            pci_address=self.pci.address if self.pci else None,
        )


def _classify(dev: PciDevice) -> tuple[AcceleratorKind, str, str] | None:
    vendor = VENDORS.get(dev.vendor_id)
    known = KNOWN_PCI.get(dev.pci_id)
    if known:
        return known[0], vendor or dev.vendor_id, known[1]
    if vendor is None:
        return None
    label = _NODE_NAMES.get(vendor, vendor).split()[0]
    if vendor in ("nvidia", "intel", "amd") and dev.class_code.startswith(CLASS_DISPLAY):
        return "gpu", vendor, f"{label} GPU [{dev.pci_id}]"
    if dev.class_code.startswith(CLASS_ACCELERATOR):
        return "npu", vendor, f"{label} accelerator [{dev.pci_id}]"
    return None


def _nvidia_info(fs: HostFS) -> dict[str, dict[str, str]]:
    """/proc/driver/nvidia/gpus/<bus>/information, keyed by lower-case bus address."""
    infos: dict[str, dict[str, str]] = {}
    for bus in fs.listdir("/proc/driver/nvidia/gpus"):
        text = fs.read_text(f"/proc/driver/nvidia/gpus/{bus}/information") or ""
        info = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        infos[info.get("Bus Location", bus).lower()] = info
    return infos


def _sysfs_nodes(fs: HostFS, address: str) -> list[str]:
    nodes = []
    for sub, dev_dir, pattern in _SYSFS_NODE_DIRS:
        for name in fs.listdir(f"/sys/bus/pci/devices/{address}/{sub}"):
            if fnmatch(name, pattern) and fs.exists(dev_dir + name):
                nodes.append(dev_dir + name)
    return nodes


def _share_nodes(fs: HostFS, drafts: Iterable[_Draft]) -> None:
    """Give devices that sysfs did not link their nodes, in order, from the vendor's glob."""
    pending: dict[str, list[_Draft]] = {}
    taken: set[str] = set()
    for d in drafts:
        taken.update(d.paths)
        pattern = _NODE_GLOBS.get((d.vendor, d.kind))
        if pattern and not d.paths:
            pending.setdefault(pattern, []).append(d)
    for pattern, group in pending.items():
        free = [n for n in fs.glob(pattern) if n not in taken]
        if len(group) == 1:
            group[0].paths.extend(free)
        else:
            for draft, node in zip(group, free, strict=False):
                draft.paths.append(node)


def probe_devices(
    fs: HostFS, pci: tuple[PciDevice, ...], board: BoardInfo
) -> tuple[Accelerator, ...]:
    drafts: list[_Draft] = []
    nvidia = _nvidia_info(fs)
    for dev in pci:
        found = _classify(dev)
        if found is None:
            continue
        kind, vendor, model = found
        draft = _Draft(kind, vendor, model, dev, _sysfs_nodes(fs, dev.address))
        info = nvidia.get(dev.address.lower())
        if vendor == "nvidia" and info:
            draft.model = info.get("Model", model)
            minor = info.get("Device Minor", "")
            if minor.isdigit() and fs.exists(f"/dev/nvidia{minor}"):
                draft.paths.append(f"/dev/nvidia{minor}")
        drafts.append(draft)
    _share_nodes(fs, drafts)
    drafts.extend(_node_only(fs, drafts, board))
    drafts.extend(_soc(fs, board))
    return tuple(d.freeze() for d in drafts)


def _node_only(fs: HostFS, drafts: list[_Draft], board: BoardInfo) -> list[_Draft]:
    """Accelerators seen only as /dev nodes (no PCI: embedded Ascend, USB/M.2 without sysfs)."""
    seen = {(d.vendor, d.kind) for d in drafts}
    tegra = board.tegra_release is not None or any(
        c.startswith("nvidia,tegra") for c in board.compatible
    )
    extra: list[_Draft] = []
    for (vendor, kind), pattern in _NODE_GLOBS.items():
        if (vendor, kind) in seen or pattern.startswith("/dev/dri/"):
            continue  # render nodes alone say nothing (virtio-gpu, simpledrm have them too)
        if vendor == "nvidia" and tegra:
            continue  # Jetson's nodes belong to its integrated GPU, found from the device tree
        for node in fs.glob(pattern):
            name = f"{_NODE_NAMES[vendor]} (from {node})"
            extra.append(_Draft(kind, vendor, name, None, [node]))
    return extra


def _soc(fs: HostFS, board: BoardInfo) -> list[_Draft]:
    found: list[_Draft] = []
    for pattern, kind, vendor, model, nodes in _SOC:
        if any(fnmatch(c, pattern) for c in board.compatible):
            paths = [n for n in nodes if fs.exists(n)]
            if vendor == "rockchip":
                # The RKNPU driver registers a DRM device on the platform bus.
                for sys_dir in fs.glob("/sys/bus/platform/devices/*.npu/drm"):
                    paths += [
                        f"/dev/dri/{n}"
                        for n in fs.listdir(sys_dir)
                        if n.startswith("renderD") and fs.exists(f"/dev/dri/{n}")
                    ]
            found.append(_Draft(kind, vendor, model, None, paths))
    return found
