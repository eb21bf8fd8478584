"""CLI: `headframe serve` (the daemon) and `headframe models use` (swap a running one)."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from runtime.cli.daemon_link import base_url, call
from runtime.config import Settings, load_settings
from runtime.errors import HeadframeError

CONFIG_HELP = "Settings file (default: the system or user headframe.toml if present)."


def _settings(
    config: Path | None, host: str | None, port: int | None
) -> tuple[Settings, dict[str, Any]]:
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["api.host"] = host
    if port is not None:
        overrides["api.port"] = port
    try:
        return load_settings(config, overrides=overrides or None), overrides
    except HeadframeError as e:
        typer.echo(f"headframe: {e.message}", err=True)
        raise typer.Exit(2) from None


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    host: str | None = typer.Option(None, "--host", help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (default 8080; 0: any)."),
) -> None:
    """Serve every configured application (or every one in the store) over HTTP until
    SIGTERM. SIGHUP re-reads the settings and reselects variants without dropping requests."""
    settings, overrides = _settings(config, host, port)
    from runtime.daemon import Daemon
    from runtime.daemon.logsetup import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    daemon = Daemon(settings, config_file=config, overrides=overrides)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code = runner.run(daemon.run())
    except HeadframeError as e:
        typer.echo(f"headframe serve: {e.message}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:  # the port is taken, the TLS files are unreadable
        typer.echo(f"headframe serve: {e}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (a core dependency; faster I/O), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# Where `models use` takes its token from, for an answer that refuses the one it sent.
_TOKEN_HINT = dict.fromkeys(
    (401, 403),
    " (models use sends the first token with the admin scope in api.admin_token_file, "
    "or HEADFRAME_API__ADMIN_TOKEN_FILE, else in api.tokens and api.tokens_file)",
)


def use(
    app_name: str = typer.Argument(..., metavar="APP", help="Application name."),
    variant: str = typer.Argument(..., metavar="VARIANT", help='Variant id, or "auto".'),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    url: str | None = typer.Option(None, "--url", help="Daemon URL (default: from settings)."),
) -> None:
    """Pin APP to VARIANT ("auto" clears the pin): the running daemon swaps with no
    request dropped (POST /admin/models/APP/select) and keeps the pin in its state
    directory across restarts; with no daemon running the pin is written there for the
    next start."""
    settings, _ = _settings(config, None, None)
    base = url or base_url(settings)
    try:
        slot = call(settings, base, f"/admin/models/{app_name}/select", {"variant": variant})
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", e.reason)
        except ValueError:
            message = e.reason
        typer.echo(f"headframe models use: {e.code}: {message}{_TOKEN_HINT.get(e.code, '')}",
                   err=True)  # fmt: skip
        raise typer.Exit(1) from None
    except HeadframeError as e:  # a tokens file that cannot be read, or a wrong line in it
        typer.echo(f"headframe models use: {e.message}", err=True)
        raise typer.Exit(2) from None
    except (urllib.error.URLError, OSError) as e:
        from runtime.cli.select_cmd import pin_offline

        reason = getattr(e, "reason", e)
        typer.echo(f"no daemon answering at {base} ({reason}); pinning for the next start")
        pin_offline(settings, app_name, variant)
        return
    typer.echo(
        f"{slot['app']} {slot['version']}: now serving {slot['variant']} "
        f"on {slot['backend']}/{slot['device']}"
        + ("" if variant == "auto" else f" (pinned; `headframe models use {app_name} auto` clears)")
    )
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `serve` to the root app and `use` to the `models` group."""
    from runtime.cli.models_cmd import models_app

    app.command("serve")(serve)
    models_app.command("use")(use)
