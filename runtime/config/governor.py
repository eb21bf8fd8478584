"""``[governor]``: what the governor watches, its thresholds, and how patient it is.

Every pressure signal has a soft and a hard threshold. "Below" signals (memory available,
cgroup headroom, GPU memory free, the margin to a thermal trip point) are in pressure when
they fall under a threshold, so their soft threshold must be ABOVE the hard one; "above"
signals (PSI, temperature without a trip point, queue depth, p95 latency) the other way
round. A contradiction is a configuration error that names both keys.

Kept apart from runtime/config/settings.py (which imports it) so the governor's room owns its
keys; the base is config_base.Section: unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from runtime.config.base import Section

# (soft key, hard key, True when the signal is in pressure BELOW its thresholds)
PAIRS: tuple[tuple[str, str, bool], ...] = (
    ("memory_soft_pct", "memory_hard_pct", True),
    ("cgroup_soft_pct", "cgroup_hard_pct", True),
    ("psi_soft_pct", "psi_hard_pct", False),
    ("thermal_soft_margin_c", "thermal_hard_margin_c", True),
    ("thermal_soft_c", "thermal_hard_c", False),
    ("gpu_memory_soft_pct", "gpu_memory_hard_pct", True),
    ("gpu_soft_c", "gpu_hard_c", False),
    ("queue_soft", "queue_hard", False),
    ("p95_soft_ms", "p95_hard_ms", False),
)


class GovernorSettings(Section):
    """Resource pressure -> smaller variants (runtime/governor/). See docs/configuration.md."""

    enabled: bool = Field(default=True, title="Watch resources and step variants down and up")
    dry_run: bool = Field(
        default=False, title="Log and report decisions, act on none (no swap, no shedding)"
    )
    period_s: float = Field(default=2.0, ge=0.05, le=3600, title="Sampling period, seconds")
    host_root: Path = Field(
        default=Path("/"),
        title="Root the signal files are read under (/proc, /sys)",
        description="a container with the host's /proc and /sys bind-mounted, or a test's "
        "fixture tree, points this elsewhere",
    )
    memory_soft_pct: float = Field(
        default=15.0, ge=0, le=100, title="Soft: MemAvailable below this % of MemTotal"
    )
    memory_hard_pct: float = Field(
        default=5.0, ge=0, le=100, title="Hard: MemAvailable below this % of MemTotal"
    )
    cgroup_soft_pct: float = Field(
        default=15.0,
        ge=0,
        le=100,
        title="Soft: cgroup memory.max headroom below this %",
        description="headroom over the working set: memory.current less the page cache the "
        "kernel can drop (memory.stat inactive_file), as the kubelet counts it",
    )
    cgroup_hard_pct: float = Field(
        default=5.0, ge=0, le=100, title="Hard: cgroup memory.max headroom below this %"
    )
    psi_soft_pct: float = Field(
        default=20.0, ge=0, le=100, title="Soft: /proc/pressure/memory some avg10 above this %"
    )
    psi_hard_pct: float = Field(
        default=60.0,
        ge=0,
        le=100,
        title="Hard: /proc/pressure/memory some avg10 above this %",
        description="60% is systemd-oomd's default limit",
    )
    thermal_soft_margin_c: float = Field(
        default=10.0, ge=0, le=200, title="Soft: a zone within this many C of its first trip"
    )
    thermal_hard_margin_c: float = Field(
        default=3.0, ge=0, le=200, title="Hard: a zone within this many C of its first trip"
    )
    thermal_soft_c: float = Field(
        default=85.0, ge=0, le=200, title="Soft: a zone without trip points above this C"
    )
    thermal_hard_c: float = Field(
        default=95.0, ge=0, le=200, title="Hard: a zone without trip points above this C"
    )
    gpu: bool = Field(default=True, title="Read NVIDIA GPU memory and temperature (NVML)")
    gpu_memory_soft_pct: float = Field(
        default=15.0, ge=0, le=100, title="Soft: GPU memory free below this %"
    )
    gpu_memory_hard_pct: float = Field(
        default=5.0, ge=0, le=100, title="Hard: GPU memory free below this %"
    )
    gpu_soft_c: float = Field(default=83.0, ge=0, le=200, title="Soft: GPU temperature above C")
    gpu_hard_c: float = Field(default=90.0, ge=0, le=200, title="Hard: GPU temperature above C")
    queue_soft: int = Field(
        default=0, ge=0, le=1_000_000, title="Soft: an app's queue depth above this (0: off)"
    )
    queue_hard: int = Field(
        default=0, ge=0, le=1_000_000, title="Hard: an app's queue depth above this (0: off)"
    )
    p95_soft_ms: float = Field(
        default=0.0, ge=0, le=3_600_000, title="Soft: an app's p95 latency above ms (0: off)"
    )
    p95_hard_ms: float = Field(
        default=0.0, ge=0, le=3_600_000, title="Hard: an app's p95 latency above ms (0: off)"
    )
    sustain_s: float = Field(
        default=10.0, ge=0, le=3600, title="Soft pressure must last this long before a step down"
    )
    recovery_margin: float = Field(
        default=0.5,
        ge=0,
        le=10,
        title="Recovery: signals back beyond soft by this fraction of the soft-hard gap",
        description="0.5 with memory soft 15% and hard 5%: available back above 20%; for a "
        "signal that rises under pressure (PSI, temperatures, queue, p95) at most this "
        "fraction of its soft threshold: PSI soft 20% is recovered below 10%",
    )
    hold_s: float = Field(
        default=60.0, ge=0, le=86400, title="Recovery must last this long before a step up"
    )
    backoff_s: float = Field(
        default=30.0, ge=0, le=86400, title="After a failed swap, wait this long before another"
    )
    idle_unload_s: float = Field(
        default=0.0,
        ge=0,
        le=7 * 86400,
        title="Unload a text model idle this long (0: never)",
        description="off by default: reloading a GGUF costs the next request seconds",
    )
    retry_after_s: int = Field(
        default=5, ge=1, le=3600, title="Retry-After while shedding load, seconds"
    )

    @model_validator(mode="after")
    def _check_pairs(self) -> GovernorSettings:
        wrong: list[str] = []
        for soft_key, hard_key, below in PAIRS:
            soft, hard = getattr(self, soft_key), getattr(self, hard_key)
            if soft_key in ("queue_soft", "p95_soft_ms") and (soft == 0 or hard == 0):
                continue  # a load signal with one side off has nothing to contradict
            if below and soft < hard:
                wrong.append(
                    f"governor.{soft_key} ({soft}) must not be below governor.{hard_key} "
                    f"({hard}): pressure is the signal falling, soft comes first"
                )
            elif not below and soft > hard:
                wrong.append(
                    f"governor.{soft_key} ({soft}) must not be above governor.{hard_key} "
                    f"({hard}): pressure is the signal rising, soft comes first"
                )
        if wrong:
            raise ValueError("; ".join(wrong))
        return self
