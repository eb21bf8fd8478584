"""What every ``headframe`` command prints and how it fails: one style for all groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer

from runtime.catalog import Store
from runtime.errors import HeadframeError

STORE_HELP = "Model store directory (default: paths.store from the settings)."


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr; raise the returned Exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def resolve_store(store_dir: Path | None) -> Store:
    """The store at ``store_dir``, else the one the settings (file + env) name."""
    if store_dir is not None:
        return Store(store_dir)
    from runtime.config import load_settings

    try:
        return Store(load_settings().paths.store)
    except HeadframeError as e:
        raise fail(e.message, 2) from e


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Plain aligned columns: readable in a terminal, greppable in a log."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
