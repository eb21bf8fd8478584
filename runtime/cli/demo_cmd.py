"""CLI: the `demo` commands (build the built-in demo catalog)."""

from __future__ import annotations

from pathlib import Path

import typer

from runtime.cli.output import fail, print_table, resolve_store
from runtime.errors import HeadframeError
from runtime.units import human_bytes, percent_bp

demo_app = typer.Typer(name="demo", help="The built-in demo models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(demo_app)


@demo_app.command("build")
def build(
    store_dir: Path | None = typer.Argument(
        None, help="Store directory (default: paths.store from the settings)."
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed, same weights, same accuracies."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the demo is present."),
) -> None:
    """Train, prune, quantize and convert the demo model into the store (no download)."""
    from runtime.demo import build_demo_catalog

    store = resolve_store(store_dir)
    try:
        packages = build_demo_catalog(store.root, seed=seed, force=force)
    except (HeadframeError, ImportError) as e:
        raise fail(getattr(e, "message", str(e))) from e
    for p in packages:
        typer.echo(f"{p.application} {p.version} in {p.path}")
        rows = [
            [
                v.id,
                v.meta.format,
                v.meta.precision,
                human_bytes(v.meta.bytes),
                percent_bp(v.meta.accuracy_bp),
                "-" if v.meta.latency_us is None else f"{v.meta.latency_us} us",
            ]
            for v in sorted(p.variants, key=lambda v: -v.meta.bytes)
        ]
        print_table(["VARIANT", "FORMAT", "PRECISION", "BYTES", "ACCURACY", "LATENCY"], rows)


@demo_app.command("pictures")
def pictures(
    directory: Path = typer.Argument(Path("."), help="Where to write the pictures."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same pictures."),
) -> None:
    """Write the demo's pictures: digit-0.png ... digit-9.jpg rendered from the held-out
    digits, and digit.png (a 7), for curl and mosquitto_pub (see the README)."""
    from runtime.demo.pictures import write_pictures

    try:
        written = write_pictures(directory, seed=seed)
    except (OSError, ImportError) as e:
        raise fail(f"{directory}: cannot write the pictures: {e}") from e
    typer.echo(f"{len(written)} pictures in {directory} (digit.png is a 7)")
