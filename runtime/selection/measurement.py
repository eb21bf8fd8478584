"""What calibration measured for one candidate (variant x backend x device) on this box.

A plain value: runtime.loading.calibrator produces it (and caches it as JSON), runtime.selection
reads it (selection stays pure: measurements are an input, never fetched). ``ok=False``
means the candidate crashed, failed to load or hung past the budget; ``error`` says so.
A candidate that was never tried has no Measurement at all ("not measured (budget)").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from runtime.units import percent_bp

# (variant id, backend, device): how selection looks a measurement up.
MeasurementKey = tuple[str, str, str]


@dataclass(frozen=True)
class Measurement:
    variant: str
    backend: str
    device: str
    ok: bool
    error: str | None = None
    quality_bp: int | None = None  # in the package's metric, on this box's golden run
    metric: str = "top1"
    p50_us: int | None = None
    p99_us: int | None = None
    batch: int = 1
    load_ms: int | None = None
    rss_growth_bytes: int | None = None
    measured_at: float = 0.0  # unix time
    seconds: float = 0.0  # wall time the measurement took

    @property
    def key(self) -> MeasurementKey:
        return (self.variant, self.backend, self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """Raises TypeError/KeyError/ValueError on a malformed entry (the cache discards it)."""
        known = {f.name for f in fields(cls)}
        m = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(m.variant, str) or not isinstance(m.ok, bool):
            raise ValueError("malformed measurement")
        return m

    def describe(self) -> str:
        """ "p50 14 us, 96.94% here" (or why it failed)."""
        if not self.ok:
            return f"failed: {self.error}"
        parts = []
        if self.p50_us is not None:
            parts.append(f"p50 {self.p50_us} us")
        if self.quality_bp is not None:
            parts.append(f"{percent_bp(self.quality_bp)} here")
        return ", ".join(parts) or "measured"
