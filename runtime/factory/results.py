"""What a build reports: one ``VariantResult`` per attempted variant, one ``BuildResult``
for the whole run (the ``--json`` object and the package's build-report.json), and the
``Progress`` protocol the CLI's live table implements."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class VariantResult:
    variant: str
    kind: str  # fp32, int8-static, q4_k_m, added ...
    format: str
    precision: str
    pruning_bp: int = 0
    ok: bool = False
    reason: str = ""  # why it failed, or a note
    bytes: int = 0
    peak_memory_bytes: int = 0
    measured_peak_bytes: int | None = None  # what loading and serving it added, measured
    runtime_bytes: int = 0  # memory beyond the weights in the estimate (a KV cache)
    accuracy_bp: int | None = None
    latency_us: int | None = None
    meets_floor: bool = False
    kept: bool = False
    seconds: float = 0.0
    device_classes: tuple[str, ...] = ("cpu",)
    entrypoint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BuildResult:
    application: str
    version: str
    source: str
    source_format: str
    metric: str
    floor_bp: int
    reference_bp: int | None = None  # the source model's own quality under the metric
    reference_latency_us: int | None = None
    reference_bytes: int = 0
    variants: list[VariantResult] = field(default_factory=list)
    package_path: str | None = None
    wall_s: float = 0.0
    reference_cpu: str = ""
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> list[VariantResult]:
        return [v for v in self.variants if v.kept]

    def pareto(self) -> set[str]:
        """Variants no other successful variant beats on bytes, quality and latency at once."""
        ok = [v for v in self.variants if v.ok]

        def dominated(a: VariantResult) -> bool:
            qa, la = a.accuracy_bp or 0, a.latency_us or 0
            for b in ok:
                qb, lb = b.accuracy_bp or 0, b.latency_us or 0
                no_worse = b.bytes <= a.bytes and qb >= qa and lb <= la
                better = b.bytes < a.bytes or qb > qa or lb < la
                if b is not a and no_worse and better:
                    return True
            return False

        return {v.variant for v in ok if not dominated(v)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pareto"] = sorted(self.pareto())
        return d


class Progress(Protocol):
    """Told what the build does, so a terminal can show it; every method is optional
    work for the implementation and must not raise."""

    def begin(self, step: str, total: int) -> None: ...

    def end(self, step: str, result: VariantResult | None) -> None: ...

    def note(self, message: str) -> None: ...


class NoProgress:
    def begin(self, step: str, total: int) -> None:
        pass

    def end(self, step: str, result: VariantResult | None) -> None:
        pass

    def note(self, message: str) -> None:
        pass
