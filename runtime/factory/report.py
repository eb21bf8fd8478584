"""The build on a terminal: a progress bar per step with elapsed time and what is left of
the time budget while it runs, then the Pareto table (bytes, quality, latency) with a
mark on the variants that meet the floor. ``--json`` prints ``BuildResult.to_dict()``
instead; both come from the same result."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from runtime.factory.results import BuildResult, VariantResult
from runtime.units import percent_bp


class RichProgress:
    """A ``runtime.factory.results.Progress`` on a rich console (stderr)."""

    def __init__(self, console: Console, budget_s: float) -> None:
        self.console = console
        self.budget_s = budget_s
        self.t0 = time.monotonic()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def _left(self) -> str:
        left = self.budget_s - (time.monotonic() - self.t0)
        return f"{max(0.0, left):.0f}s of {self.budget_s:.0f}s budget left"

    def begin(self, step: str, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task(step, total=max(total, 1), left=self._left())
        self.bar.update(self.task, description=f"building {step}", total=max(total, 1),
                        left=self._left())  # fmt: skip

    def end(self, step: str, result: VariantResult | None) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=1, left=self._left())
        if result is not None:
            status = "[green]ok[/]" if result.ok else f"[red]failed[/]: {result.reason}"
            self.console.print(f"  {step}: {status} ({result.seconds:.1f}s)")

    def note(self, message: str) -> None:
        self.console.print(f"  {message}")


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def result_table(result: BuildResult) -> Table:
    """Every attempted variant: bytes and latency against the source, quality, floor mark,
    Pareto mark, and the reason for each that failed or was left out."""
    pareto = result.pareto()
    table = Table(
        title=f"{result.application} {result.version}: metric {result.metric}, "
        f"floor {percent_bp(result.floor_bp)}, source {percent_bp(result.reference_bp)}"
    )
    # "x src": against the source model (fp32 ONNX, or the f32/f16 GGUF)
    for col in ("variant", "format", "bytes", "x src", "quality", "latency", "x src"):
        table.add_column(col, justify="right" if col not in ("variant", "format") else "left")
    table.add_column("floor")
    table.add_column("pareto")
    table.add_column("note")
    for v in sorted(result.variants, key=lambda v: (not v.ok, -v.bytes)):
        if not v.ok:
            table.add_row(v.variant, v.format, "-", "-", "-", "-", "-", "", "", v.reason)
            continue
        table.add_row(
            v.variant,
            f"{v.format} {v.precision}",
            f"{v.bytes:,}",
            _ratio(v.bytes, result.reference_bytes),
            percent_bp(v.accuracy_bp),
            "-" if v.latency_us is None else f"{v.latency_us} us",
            _ratio(v.latency_us, result.reference_latency_us),
            "meets" if v.meets_floor else "below",
            "*" if v.variant in pareto else "",
            "" if v.kept else "left out" + (f": {v.reason}" if v.reason else ""),
        )
    return table


def print_result(console: Console, result: BuildResult) -> None:
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(result_table(result))
    kept = ", ".join(v.variant for v in result.kept) or "none"
    console.print(f"kept: {kept}")
    if result.package_path:
        console.print(f"package: {result.package_path} ({result.wall_s:.1f}s)")
