"""The ``headframe`` command. Each sub-command lives in its own module and only parses,
calls the module that owns the logic, and prints."""

from __future__ import annotations

import typer

from runtime import __version__

app = typer.Typer(
    name="headframe",
    help="Edge AI runtime: probe the hardware, pick the right model variant, serve it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"headframe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """headframe: the edge AI runtime industrial sites trust."""


def _register_all() -> None:
    # Each module adds its own commands; imports stay cheap (no runtimes imported here).
    from runtime.cli import config_cmd, demo_cmd, detect_cmd, fleet_cmd, models_cmd, serve_cmd

    for module in (detect_cmd, config_cmd, models_cmd, demo_cmd, serve_cmd, fleet_cmd):
        module.register(app)


_register_all()


def main() -> None:
    app()
