"""Evaluating one profile's match rules against a HardwareReport. Pure: no I/O.

Each rule that a profile sets yields one ``RuleResult``: whether it holds, and a sentence
a person can read ("CPU has avx512f" or "needs a GPU from nvidia; this host has none").
Those sentences are the reasons ``headframe detect`` prints.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import TYPE_CHECKING

from runtime.hardware.report import Accelerator, HardwareReport

if TYPE_CHECKING:
    from runtime.profiles.profile import MatchRules


@dataclass(frozen=True)
class RuleResult:
    rule: str  # the MatchRules field name
    ok: bool
    text: str


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _names(accs: list[Accelerator]) -> str:
    """ "NVIDIA L4 (nvidia)", or "4x Huawei Ascend 310 (huawei)" for identical cards."""
    counts = Counter(f"{a.model} ({a.vendor})" for a in accs)
    return ", ".join(f"{n}x {name}" if n > 1 else name for name, n in counts.items()) or "none"


def l4t_release(line: str) -> str:
    """ "# R36 (release), REVISION: 3.0, ..." -> "L4T R36.3.0"; other text is returned as is."""
    found = re.search(r"R(\d+)\b.*?REVISION:\s*([\d.]+)", line)
    return f"L4T R{found.group(1)}.{found.group(2)}" if found else line


def _any_glob(values: tuple[str, ...] | list[str], patterns: tuple[str, ...]) -> list[str]:
    return [v for v in values if any(fnmatch(v.lower(), p.lower()) for p in patterns)]


def _vendor_rule(
    rule: str, kinds: tuple[str, ...], vendors: tuple[str, ...], report: HardwareReport
) -> RuleResult:
    label = "/".join(k.upper() for k in kinds)
    present = [a for a in report.accelerators if a.kind in kinds]
    hits = [a for a in present if a.vendor in vendors]
    if hits:
        return RuleResult(rule, True, f"{label} present: {_names(hits)}")
    return RuleResult(
        rule,
        False,
        f"needs {'an' if label[0] == 'N' else 'a'} {label} from {' or '.join(vendors)}; "
        f"this host has: {_names(present)}",
    )


def evaluate(rules: MatchRules, report: HardwareReport) -> list[RuleResult]:
    """One result per rule that is set, in a fixed order."""
    out: list[RuleResult] = []
    cpu, flags = report.cpu, set(report.cpu.flags)
    if rules.arch:
        ok = cpu.arch in rules.arch
        want = " or ".join(rules.arch)
        text = f"arch is {cpu.arch}" + ("" if ok else f", profile wants {want}")
        out.append(RuleResult("arch", ok, text))
    if rules.cpu_vendor:
        ok = cpu.vendor in rules.cpu_vendor
        text = f"CPU vendor is {cpu.vendor}" + (
            "" if ok else f", profile wants {' or '.join(rules.cpu_vendor)}"
        )
        out.append(RuleResult("cpu_vendor", ok, text))
    if rules.cpu_flags_all:
        missing = [f for f in rules.cpu_flags_all if f not in flags]
        text = (
            f"CPU lacks {', '.join(missing)}"
            if missing
            else f"CPU has {', '.join(rules.cpu_flags_all)}"
        )
        out.append(RuleResult("cpu_flags_all", not missing, text))
    if rules.cpu_flags_any:
        have = [f for f in rules.cpu_flags_any if f in flags]
        text = (
            f"CPU has {', '.join(have)}"
            if have
            else f"CPU has none of {', '.join(rules.cpu_flags_any)}"
        )
        out.append(RuleResult("cpu_flags_any", bool(have), text))
    if rules.gpu_vendor:
        out.append(_vendor_rule("gpu_vendor", ("gpu",), rules.gpu_vendor, report))
    if rules.gpu_min_memory_bytes is not None:
        out.append(_gpu_memory(rules, report))
    if rules.npu_vendor:
        out.append(_vendor_rule("npu_vendor", ("npu", "tpu"), rules.npu_vendor, report))
    if rules.board_compatible_any:
        hits = _any_glob(report.board.compatible, rules.board_compatible_any)
        text = (
            f"device tree is compatible with {', '.join(hits)}"
            if hits
            else f"device tree is not compatible with {' or '.join(rules.board_compatible_any)}"
            f" (has: {', '.join(report.board.compatible) or 'no device tree'})"
        )
        out.append(RuleResult("board_compatible_any", bool(hits), text))
    if rules.board_model_any:
        model = report.board.model
        ok = bool(model and _any_glob([model], rules.board_model_any))
        want = " or ".join(rules.board_model_any)
        text = f"board model is {model!r}" + ("" if ok else f", profile wants {want}")
        out.append(RuleResult("board_model_any", ok, text))
    if rules.tegra is not None:
        release = report.board.tegra_release
        if release is not None:
            text = f"Jetson ({l4t_release(release)})" + (
                "" if rules.tegra else "; profile excludes Jetson"
            )
        else:
            text = "no /etc/nv_tegra_release (not a Jetson)"
        out.append(RuleResult("tegra", (release is not None) == rules.tegra, text))
    out.extend(_memory(rules, report))
    if rules.device_paths_any:
        paths = list(report.device_nodes) + [p for a in report.accelerators for p in a.device_paths]
        hits = sorted(set(_any_glob(paths, rules.device_paths_any)))
        text = (
            f"device nodes present: {', '.join(hits)}"
            if hits
            else f"no device node matches {' or '.join(rules.device_paths_any)}"
        )
        out.append(RuleResult("device_paths_any", bool(hits), text))
    if rules.pci_ids_any:
        hits = sorted({p.pci_id for p in report.pci if _any_glob([p.pci_id], rules.pci_ids_any)})
        text = (
            f"PCI devices present: {', '.join(hits)}"
            if hits
            else f"no PCI device matches {' or '.join(rules.pci_ids_any)}"
        )
        out.append(RuleResult("pci_ids_any", bool(hits), text))
    return out


def _gpu_memory(rules: MatchRules, report: HardwareReport) -> RuleResult:
    need = rules.gpu_min_memory_bytes or 0
    gpus = report.accelerators_of("gpu")
    if rules.gpu_vendor:
        gpus = [g for g in gpus if g.vendor in rules.gpu_vendor]
    known = [g for g in gpus if g.memory_bytes is not None]
    best = max(known, key=lambda g: g.memory_bytes or 0, default=None)
    if best is None:
        why = "no such GPU" if not gpus else "GPU memory unknown (NVML not available)"
        return RuleResult("gpu_min_memory_bytes", False, f"needs {gib(need)} GPU memory: {why}")
    ok = (best.memory_bytes or 0) >= need
    cmp = ">=" if ok else "<"
    text = f"GPU memory {gib(best.memory_bytes or 0)} {cmp} {gib(need)} ({best.model})"
    return RuleResult("gpu_min_memory_bytes", ok, text)


def _memory(rules: MatchRules, report: HardwareReport) -> list[RuleResult]:
    total = report.memory.total_bytes
    out = []
    if rules.min_memory_bytes is not None:
        low = rules.min_memory_bytes
        ok = total >= low
        text = f"RAM {gib(total)} {'>=' if ok else '<'} {gib(low)}"
        out.append(RuleResult("min_memory_bytes", ok, text))
    if rules.max_memory_bytes is not None:
        high = rules.max_memory_bytes
        ok = total <= high
        text = f"RAM {gib(total)} {'<=' if ok else '>'} {gib(high)}"
        out.append(RuleResult("max_memory_bytes", ok, text))
    return out
