"""Memory facts from /proc/meminfo (and the cgroup v2 limit, which bounds a container)."""

from __future__ import annotations

from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import MemoryInfo


def parse_meminfo(text: str) -> dict[str, int]:
    """Values in bytes, keyed as the kernel names them (MemTotal, MemAvailable, ...)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit():
            continue
        scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
        values[key.strip()] = int(parts[0]) * scale
    return values


def probe_memory(fs: HostFS) -> MemoryInfo | None:
    text = fs.read_text("/proc/meminfo")
    if text is None:
        return None
    values = parse_meminfo(text)
    total = values.get("MemTotal")
    if total is None:
        return None
    limit = (fs.read_line("/sys/fs/cgroup/memory.max") or "").strip()
    return MemoryInfo(
        total_bytes=total,
        available_bytes=values.get("MemAvailable"),
        # "max" means no limit; a number below MemTotal means a container is fenced in.
        cgroup_limit_bytes=int(limit) if limit.isdigit() and int(limit) < total else None,
    )
