"""CLI: ``headframe models build``: parse, call runtime.factory, print. Exit 2 for bad
input (one line naming the file and what is wrong), 1 when no variant survives, 130 on
Ctrl-C, SIGTERM or SIGHUP; nothing half-written is left in any case."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import get_args

import typer

from runtime.catalog import NAME_RE, VERSION_RE, Lineage, QualityMetric
from runtime.cli.output import STORE_HELP, fail, print_json
from runtime.factory.spec import (
    DEFAULT_MAX_DROP_BP,
    DEFAULT_TIME_BUDGET_S,
    ENCODER_VARIANTS,
    GGUF_EXTRA,
    GGUF_VARIANTS,
    INT8_SCHEMES,
    ONNX_VARIANTS,
    BuildInputError,
    BuildOptions,
    ExtraVariant,
)

# "auto" picks from the golden file; the rest are catalog.py's quality metrics.
METRIC_CHOICES: tuple[str, ...] = ("auto", *get_args(QualityMetric))


def register(group: typer.Typer) -> None:
    """``build`` joins the ``models`` group (called by runtime.cli.models_cmd.register)."""
    group.command("build")(build)


def _variants(source: Path, text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    gguf = source.suffix.lower() == ".gguf"
    known: tuple[str, ...] = (*GGUF_VARIANTS, *GGUF_EXTRA) if gguf else ONNX_VARIANTS
    if source.is_dir():
        known = ENCODER_VARIANTS
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        kind = "a GGUF" if gguf else "a sentence encoder" if source.is_dir() else "an ONNX"
        raise fail(
            f"--variants: unknown variant {', '.join(unknown) or '(none given)'} for {kind} "
            f"source (one of {', '.join(known)})",
            2,
        )
    return names


def _extra(spec: str) -> ExtraVariant:
    """``PATH[:id[:pruning_bp]]``."""
    parts = spec.split(":")
    path = Path(parts[0])
    vid = (
        parts[1]
        if len(parts) > 1 and parts[1]
        else re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower())
    )
    try:
        bp = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise fail(f"--add-variant {spec}: pruning_bp must be an integer", 2) from None
    if not re.match(NAME_RE, vid) or not 0 <= bp < 10_000:
        raise fail(f"--add-variant {spec}: a variant id and pruning_bp 0..9999", 2)
    if not path.is_file():
        raise fail(f"{path}: file not found (--add-variant)", 2)
    return ExtraVariant(path, vid, bp)


def build(
    source: Path = typer.Argument(
        ...,
        help="The fp32 ONNX or f32/f16/bf16 GGUF model, or a sentence-transformers "
        "directory (an encoder: an embedding package).",
    ),
    app: str = typer.Option(..., "--app", help="Application name."),
    version: str = typer.Option(..., "--version", help="Package version, e.g. 1.0.0."),
    golden: Path = typer.Option(
        ...,
        "--golden",
        help="Golden set: .npz (tensor inputs [+ labels]), .txt/.jsonl (GGUF), or texts "
        "(.txt, one a line, or a .json list) for an encoder.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the package to this new directory."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP + " Install there."),
    variants: str | None = typer.Option(
        None, "--variants", help="Comma-separated variants (default: every one that can be made)."
    ),
    calibration: Path | None = typer.Option(
        None, "--calibration", help="int8 calibration .npz (default: the golden inputs)."
    ),
    metric: str = typer.Option("auto", "--metric", help=", ".join(METRIC_CHOICES) + "."),
    fidelity_tolerance: float = typer.Option(
        0.05, "--fidelity-tolerance", min=0.0, help="fidelity: allowed relative L2 distance."
    ),
    max_drop_bp: int = typer.Option(
        DEFAULT_MAX_DROP_BP,
        "--max-drop-bp",
        min=0,
        max=10_000,
        help="int8: largest quality drop against the source before layers are kept in float.",
    ),
    floor_bp: int = typer.Option(0, "--floor-bp", min=0, max=10_000, help="Accuracy floor (bp)."),
    keep_all: bool = typer.Option(False, "--keep-all", help="Keep variants below the floor."),
    time_budget: float = typer.Option(
        DEFAULT_TIME_BUDGET_S, "--time-budget", min=1.0, help="Seconds for the whole build."
    ),
    int8_scheme: str = typer.Option(
        "reduce-range", "--int8-scheme", help=f"One of {', '.join(INT8_SCHEMES)}."
    ),
    add_variant: list[str] = typer.Option(
        [], "--add-variant", help="An already-pruned model: PATH[:id[:pruning_bp]] (repeatable)."
    ),
    pruning_bp: int = typer.Option(0, "--pruning-bp", min=0, max=9_999, help="The source's own."),
    prune_layers: list[int] = typer.Option(
        [], "--prune-layers", help="GGUF: make rungs with N blocks dropped (repeatable)."
    ),
    prune_choice: str = typer.Option("last", "--prune-choice", help="last or measured."),
    prune_quant: str = typer.Option("q8_0", "--prune-quant", help="Pruned rungs' quantization."),
    foundation: str | None = typer.Option(None, "--foundation", help="Lineage: foundation."),
    sector: str | None = typer.Option(None, "--sector", help="Lineage: sector fine-tune."),
    description: str = typer.Option("", "--description"),
    latency_budget_us: int | None = typer.Option(None, "--latency-budget-us", min=1),
    replace: bool = typer.Option(False, "--replace", help="--store: replace that version."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Turn one model into a measured variant family and write it as a package."""
    from rich.console import Console

    from runtime.factory import build as run_build
    from runtime.factory.builder import NoVariantSurvived
    from runtime.factory.report import RichProgress, print_result

    if not re.match(NAME_RE, app):
        raise fail(f"--app: {app!r} is not a valid application name", 2)
    if not re.match(VERSION_RE, version):
        raise fail(f"--version: {version!r} is not a valid version", 2)
    if int8_scheme not in INT8_SCHEMES or prune_choice not in ("last", "measured"):
        raise fail("--int8-scheme or --prune-choice: not one of the listed values", 2)
    if metric not in METRIC_CHOICES:
        raise fail(f"--metric: {metric!r} is not one of {', '.join(METRIC_CHOICES)}", 2)
    opts = BuildOptions(
        source=source,
        app=app,
        version=version,
        golden=golden,
        out=out,
        store=store_dir,
        variants=_variants(source, variants),
        calibration=calibration,
        metric=metric,
        fidelity_tolerance=fidelity_tolerance,
        max_drop_bp=max_drop_bp,
        floor_bp=floor_bp,
        keep_all=keep_all,
        time_budget_s=time_budget,
        int8_scheme=int8_scheme,
        extra_variants=tuple(_extra(s) for s in add_variant),
        prune_counts=tuple(prune_layers),
        prune_choice=prune_choice,
        prune_quant=tuple(q.strip() for q in prune_quant.split(",") if q.strip()),
        pruning_bp=pruning_bp,
        lineage=Lineage(
            foundation=foundation or app, sector=sector or "unspecified", application=app
        ),
        description=description,
        latency_budget_us=latency_budget_us,
        replace=replace,
    )
    console = Console(stderr=True)
    try:
        if as_json:
            result = run_build(opts)
        else:
            with RichProgress(console, time_budget) as progress:
                result = run_build(opts, progress)
    except BuildInputError as e:
        raise fail(e.message, 2) from e
    except NoVariantSurvived as e:
        if as_json:
            print_json(e.result.to_dict())
        else:
            print_result(console, e.result)
        raise fail(f"{source}: {e}", 1) from e
    except KeyboardInterrupt:
        fail("interrupted: nothing was written", 130)
        # The staging directory is gone and the steps' child processes stopped. Leave
        # without the interpreter's teardown: native runtimes cut mid-step have crashed
        # in their destructors there (SIGSEGV), turning a clean stop into a core dump.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if as_json:
        print_json(result.to_dict())
    else:
        # piped into a log, rich would squeeze the table into 80 columns
        print_result(Console(width=None if sys.stdout.isatty() else 160), result)
