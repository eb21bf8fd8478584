"""CLI: ``headframe detect``: probe the hardware, match a device profile, say why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runtime.config import load_settings
from runtime.errors import ConfigError, ProbeError
from runtime.hardware import HardwareReport, probe
from runtime.profiles import ProfileMatch, default_profiles_dir, load_profiles, match
from runtime.profiles.rules import gib


def detect_document(report: HardwareReport, result: ProfileMatch) -> dict[str, Any]:
    """The --json shape: {"hardware": ..., "runtimes": [...], "profile": ..., "timings_s": ...}."""
    hardware = report.to_dict()
    runtimes = hardware.pop("runtimes")
    timings = hardware.pop("timings")
    return {
        "hardware": hardware,
        "runtimes": runtimes,
        "profile": result.to_dict(),
        "timings_s": {k: round(v, 6) for k, v in timings.items()},
    }


def _print_table(report: HardwareReport, result: ProfileMatch, console: Console) -> None:
    cpu, mem = report.cpu, report.memory
    hw = Table(title=f"Hardware ({report.root})", show_header=False, title_justify="left")
    hw.add_column(style="bold")
    hw.add_column()
    hw.add_row("CPU", f"{cpu.model} ({cpu.vendor}, {cpu.arch}, {cpu.cores} logical cores)")
    isa = [f for f in cpu.flags if f.startswith(("avx", "amx", "asimd", "sve", "i8mm", "fma"))]
    hw.add_row("ISA", " ".join(isa) or "(baseline)")
    avail = f", {gib(mem.available_bytes)} available" if mem.available_bytes is not None else ""
    hw.add_row("Memory", f"{gib(mem.total_bytes)}{avail}")
    if report.board.model or report.board.tegra_release:
        hw.add_row("Board", report.board.model or "")
    for a in report.accelerators:
        extra = [gib(a.memory_bytes)] if a.memory_bytes else []
        extra += [f"cc {a.compute_capability}"] if a.compute_capability else []
        extra += list(a.device_paths) or ["no device node"]
        hw.add_row(a.kind.upper(), f"{a.model} [{a.vendor}] " + ", ".join(extra))
    if not report.accelerators:
        hw.add_row("Accelerators", "none")
    console.print(hw)

    rt = Table(title="Runtimes", title_justify="left")
    for col in ("runtime", "available", "version", "devices / providers", "note"):
        rt.add_column(col)
    for r in report.runtimes:
        rt.add_row(
            r.name,
            "yes" if r.available else "no",
            r.version or "",
            ", ".join(r.devices),
            r.reason or "",
        )
    console.print(rt)

    console.print(f"[bold]Profile:[/bold] {result.profile.name} — {result.profile.description}")
    if result.profile.source:
        source = result.profile.source
        if source.is_relative_to(Path.cwd()):
            source = source.relative_to(Path.cwd())
        console.print(f"  [dim]from {source}[/dim]")
    for reason in result.reasons:
        console.print(f"  • {reason}")
    cand = Table(title="Candidates", title_justify="left")
    for col in ("profile", "priority", "matched", "why / why not"):
        cand.add_column(col)
    for c in result.candidates:
        mark = "chosen" if c.name == result.profile.name else ("yes" if c.matched else "no")
        cand.add_row(
            c.name, str(c.priority), mark, "; ".join(r for r in c.reasons if r != "chosen")
        )
    console.print(cand)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    @app.command()
    def detect(
        root: Path = typer.Option(
            Path("/"), "--root", help="Probe this directory as the host's / (a fixture tree)."
        ),
        profiles: Path | None = typer.Option(
            None, "--profiles", help="Device profiles directory (default: the installed ones)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        config: Path | None = typer.Option(
            None, "--config", help="Settings file, for paths.profiles_dir (default: the usual one)."
        ),
        live: bool | None = typer.Option(
            None,
            "--live/--no-live",
            help="Ask installed libraries (NVML, runtimes). Default: only when --root is /.",
        ),
        save_tree: Path | None = typer.Option(
            None,
            "--save-tree",
            help="Also copy every file the probe read into this new directory, a fixture "
            "host that `detect --root` reproduces anywhere (for support and tests).",
        ),
    ) -> None:
        """Probe the hardware, match a device profile and explain the match."""
        try:
            report = probe(root, live=live, record_into=save_tree)
            if profiles is None:
                # The same directory the daemon would use: settings.paths.profiles_dir first.
                profiles = default_profiles_dir(load_settings(config))
            found = load_profiles(profiles)
            result = match(report, found)
        except (ProbeError, ConfigError) as e:
            typer.echo(f"headframe detect: {e.message}", err=True)
            raise typer.Exit(2) from e
        if as_json:
            typer.echo(json.dumps(detect_document(report, result), indent=2))
        else:
            _print_table(report, result, Console())
