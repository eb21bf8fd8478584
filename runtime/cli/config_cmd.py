"""CLI: ``headframe config show`` (effective settings and where each came from) and
``headframe config check FILE``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runtime.config import (
    ENV_PREFIX,
    check_config_file,
    default_config_file,
    load_settings,
    read_config_file,
)
from runtime.config.doc import commented_file
from runtime.errors import ConfigError
from runtime.files import atomic_write_bytes


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"api": {"port": 1}} -> {"api.port": 1}; lists and None are leaves."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def _env_keys() -> dict[str, str]:
    """Dotted setting name -> the HEADFRAME_* variable that sets it (or a section above it)."""
    keys = {}
    for var in os.environ:
        if var.startswith(ENV_PREFIX):
            keys[var[len(ENV_PREFIX) :].lower().replace("__", ".")] = var
    return keys


def _source(key: str, env: dict[str, str], file_keys: set[str], file: Path | None) -> str:
    def covers(names: set[str] | dict[str, str]) -> str | None:
        return next((n for n in names if key == n or key.startswith(n + ".")), None)

    hit = covers(env)
    if hit is not None:
        return f"env {env[hit]}"
    if covers(file_keys) is not None:
        return f"file {file}"
    return "default"


def effective_settings(config: Path | None) -> tuple[list[dict[str, Any]], Path | None]:
    """Every setting as {"key", "value", "source"}, and the file that was read (if any)."""
    file = config
    if file is None and default_config_file().is_file():
        file = default_config_file()
    settings = load_settings(file, use_default_file=False)
    file_keys = set(_flatten(read_config_file(file))) if file else set()
    env = _env_keys()
    rows = [
        {"key": key, "value": value, "source": _source(key, env, file_keys, file)}
        for key, value in sorted(_flatten(settings.model_dump(mode="json")).items())
    ]
    return rows, file


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    config_app = typer.Typer(help="Show or check settings.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def show(
        config: Path | None = typer.Option(
            None, "--config", help="Settings file (default: the system or user file if present)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
    ) -> None:
        """Print the effective settings and the source of each value: default, file or env."""
        try:
            rows, file = effective_settings(config)
        except ConfigError as e:
            typer.echo(f"headframe config show: {e.message}", err=True)
            raise typer.Exit(2) from e
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        looked = config or default_config_file()
        where = f"file: {file}" if file else f"file: none ({looked} does not exist)"
        typer.echo(f"Settings {where}")
        table = Table()
        table.add_column("key", no_wrap=True)
        table.add_column("value", overflow="fold")
        table.add_column("source", overflow="fold")
        for row in rows:
            table.add_row(row["key"], json.dumps(row["value"]), row["source"])
        Console().print(table)

    @config_app.command("check")
    def check(file: Path = typer.Argument(..., help="The settings file to validate.")) -> None:
        """Validate a settings file on its own; exit 1 with the reason when it is invalid."""
        try:
            check_config_file(file)
        except ConfigError as e:
            typer.echo(f"headframe config check: {e.message}", err=True)
            raise typer.Exit(1) from e
        typer.echo(f"{file}: ok")

    @config_app.command("init")
    def init(
        path: Path | None = typer.Argument(
            None, help="Where to write (default: the file headframe reads when run like this)."
        ),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    ) -> None:
        """Write a settings file with every key at its default, commented out."""
        target = path or default_config_file()
        if target.exists() and not force:
            typer.echo(
                f"headframe config init: {target} exists (use --force to overwrite)", err=True
            )
            raise typer.Exit(2)
        try:
            atomic_write_bytes(target, commented_file().encode())
        except OSError as e:
            typer.echo(f"headframe config init: {target}: {e.strerror}", err=True)
            raise typer.Exit(2) from e
        typer.echo(f"wrote {target}: every key at its default, commented out")
