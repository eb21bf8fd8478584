"""CPU facts from /proc/cpuinfo: architecture, vendor, model, logical cores, ISA flags.

x86 kernels list ``flags`` (avx2, avx512f, avx512_vnni, amx_tile, ...); arm64 kernels list
``Features`` (asimd, asimddp, sve, i8mm, ...) and name the core only by implementer and
part number, so the common parts are named here.
"""

from __future__ import annotations

from collections import Counter

from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import CpuInfo

_X86_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "hygon"}

# Arm "CPU implementer" codes (arch/arm64/include/asm/cputype.h).
_ARM_IMPLEMENTERS = {
    0x41: "arm",
    0x42: "broadcom",
    0x43: "cavium",
    0x48: "huawei",
    0x4E: "nvidia",
    0x51: "qualcomm",
    0x61: "apple",
    0xC0: "ampere",
}

# (implementer, part) -> core name, for the parts edge boxes actually carry.
_ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD42): "Cortex-A78AE",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD46): "Cortex-A510",
    (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x48, 0xD01): "Kunpeng-920 (TaiShan v110)",
    (0x4E, 0x004): "Carmel",
    (0xC0, 0xAC3): "Ampere-1",
}


def _blocks(text: str) -> list[dict[str, str]]:
    """One dict per processor block; keys as the kernel writes them."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _int(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def _arm_model(processors: list[dict[str, str]]) -> tuple[str, str]:
    """(vendor, model) for arm64: big.LITTLE boxes list every part, e.g. 4x Cortex-A55 + ..."""
    names: Counter[str] = Counter()
    vendor = "unknown"
    for p in processors:
        impl, part = _int(p.get("CPU implementer")), _int(p.get("CPU part"))
        if impl is None:
            continue
        vendor = _ARM_IMPLEMENTERS.get(impl, f"arm-implementer-{impl:#x}")
        names[_ARM_PARTS.get((impl, part or 0), f"part {impl:#x}:{part or 0:#x}")] += 1
    if not names:
        return vendor, "unknown Arm CPU"
    if len(names) == 1:
        return vendor, next(iter(names))
    return vendor, " + ".join(f"{n}x {name}" for name, n in sorted(names.items()))


def parse_cpuinfo(text: str, fallback_arch: str | None = None) -> CpuInfo:
    """Parse /proc/cpuinfo. ``fallback_arch`` (uname -m) is used only when the text is ambiguous."""
    blocks = _blocks(text)
    processors = [b for b in blocks if "processor" in b and b["processor"].isdigit()]
    first = processors[0] if processors else (blocks[0] if blocks else {})
    if "flags" in first:  # x86
        flags = first["flags"].split()
        arch = "x86_64" if "lm" in flags else "i686"
        vendor = _X86_VENDORS.get(first.get("vendor_id", ""), "unknown")
        model = first.get("model name") or "unknown x86 CPU"
    elif "Features" in first:  # Arm
        flags = first["Features"].split()
        level = _int(first.get("CPU architecture"))
        arch = "aarch64" if level is None or level >= 8 else "armv7l"
        vendor, model = _arm_model(processors)
        if model.startswith(("part ", "unknown")):
            # Some vendor kernels print "ARMv8 Processor rev 1 (v8l)"; better than a part number.
            model = first.get("model name") or model
    else:
        flags = []
        arch = fallback_arch or "unknown"
        vendor, model = "unknown", first.get("model name") or first.get("cpu model") or "unknown"
    return CpuInfo(
        arch=arch,
        model=" ".join(model.split()),
        vendor=vendor,
        cores=max(len(processors), 1),
        flags=tuple(sorted({f.lower() for f in flags})),
        physical_cores=_physical_cores(processors, arch),
    )


def _physical_cores(processors: list[dict[str, str]], arch: str) -> int | None:
    """x86 lists hyper-threads as processors sharing a (physical id, core id); arm64 has no
    SMT on the parts edge boxes carry, so each processor is a core."""
    if arch.startswith(("aarch64", "arm")):
        return len(processors) or None
    pairs = {(p.get("physical id"), p.get("core id")) for p in processors}
    if not processors or (None, None) in pairs:
        return None
    return len(pairs)


def probe_cpu(fs: HostFS, fallback_arch: str | None = None) -> CpuInfo | None:
    text = fs.read_text("/proc/cpuinfo")
    if text is None:
        return None
    return parse_cpuinfo(text, fallback_arch)
