"""The ``headframe`` command. Each sub-command lives in its own module and only parses,
calls the module that owns the logic, and prints.

Start-up time matters at a site (an OT engineer types ``headframe models list`` and waits),
so ``main()`` imports only the command modules that the first word on the command line
needs; ``--help`` and the ``app`` attribute (tests, completion) get every command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Any

import typer
import typer.main

from runtime import __version__

# First command-line word -> the modules that register commands under it (serve_cmd adds
# `models use`, so `models` needs both).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "detect": ("detect_cmd",),
    "config": ("config_cmd",),
    "models": ("models_cmd", "serve_cmd"),
    "demo": ("demo_cmd",),
    "serve": ("serve_cmd",),
    "keys": ("fleet_cmd",),
    "bundle": ("fleet_cmd",),
    "fleet": ("fleet_cmd",),
    "publish": ("fleet_cmd",),
    "rollback": ("fleet_cmd",),
    "governor": ("governor_cmd",),
    "knowledge": ("knowledge_cmd",),
}
ALL_MODULES = (
    "detect_cmd", "config_cmd", "models_cmd", "demo_cmd", "serve_cmd", "fleet_cmd", "governor_cmd",
    "knowledge_cmd",
)  # fmt: skip


def _version(value: bool) -> None:
    if value:
        typer.echo(f"headframe {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """headframe: the edge AI runtime industrial sites trust."""


def build_app(modules: Iterable[str] = ALL_MODULES) -> typer.Typer:
    """The root command with the commands of ``modules`` (names in runtime/cli/)."""
    app = typer.Typer(
        name="headframe",
        help="Edge AI runtime: probe the hardware, pick the right model variant, serve it.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    for name in dict.fromkeys(modules):  # in order, once each
        importlib.import_module(f"runtime.cli.{name}").register(app)
    return app


def modules_for(argv: list[str]) -> tuple[str, ...]:
    """The command modules that ``argv`` (without the program name) needs."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return COMMAND_MODULES.get(first or "", ALL_MODULES)


def __getattr__(name: str) -> Any:
    # `from runtime.cli import app`: the whole command tree, built on first use.
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _plain_help(command: Any) -> None:
    # typer's rich help boxes every option and shows "<bool>" beside each on/off flag, as if
    # it took a value; click's plain layout does neither and greps well on a site terminal.
    command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def main() -> None:
    command = typer.main.get_command(build_app(modules_for(sys.argv[1:])))
    _plain_help(command)
    command(prog_name="headframe")
