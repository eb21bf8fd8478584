"""``headframe governor status``: what the running daemon's governor sees and will do,
read from its /status ``governor`` section (a table, or ``--json``)."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

import typer

from runtime.cli.daemon_link import base_url, call
from runtime.config import load_settings
from runtime.errors import HeadframeError

CONFIG_HELP = "Settings file (default: the system or user headframe.toml if present)."
governor_app = typer.Typer(
    help="The resource governor of the running daemon.", no_args_is_help=True
)


def _threshold(t: dict[str, Any] | None) -> str:
    if not t:
        return ""
    sign = "<" if t.get("pressure_when") == "below" else ">"
    unit = t.get("unit") or ""
    parts = [f"{name} {sign} {t[name]:g}{unit}" for name in ("soft", "hard") if t.get(name)]
    return ", ".join(parts) or "off"


def print_status(doc: dict[str, Any]) -> None:
    """The governor section as an operator reads it."""
    mode = " (dry run: decisions are logged, not acted on)" if doc.get("dry_run") else ""
    typer.echo(f"state:  {doc['state']}{mode}")
    typer.echo(f"every {doc['period_s']:g} s under {doc['host_root']}; "
               f"sustain {doc['sustain_s']:g} s, hold {doc['hold_s']:g} s, "
               f"back-off {doc['backoff_s']:g} s")  # fmt: skip
    rows = [("SIGNAL", "SOURCE", "VALUE", "LEVEL", "THRESHOLDS")]
    for s in doc.get("signals", []):
        unit = s.get("unit") or ""
        rows.append((s["signal"], s.get("source") or "", f"{s['value']:g}{unit}", s["level"],
                     _threshold(doc["thresholds"].get(s["signal"]))))  # fmt: skip
    if len(rows) == 1:
        typer.echo("no signal could be read yet")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4])
    for app, st in sorted(doc.get("stepped", {}).items()):
        typer.echo(
            f"stepped down: {app} serves {st['serving']} (from {' <- '.join(st['came_from'])})"
        )
    last = doc.get("last_action")
    if last:
        when = time.strftime("%H:%M:%S", time.localtime(last["at"]))
        what = f"{last.get('app', '')} {last.get('variant', '')} -> {last.get('to', '')}".strip()
        typer.echo(f"last:   {when} {last['action']} {what if last.get('app') else ''}".rstrip()
                   + f" ({last.get('reason', '')})")  # fmt: skip
    else:
        typer.echo("last:   no action yet")
    typer.echo(f"next:   {doc.get('next_action') or 'nothing while there is no pressure'}")
    swaps = doc.get("swaps", {})
    typer.echo(f"swaps:  {swaps.get('ok', 0)} ok, {swaps.get('failed', 0)} failed"
               + (" ; shedding load" if doc.get("shedding") else ""))  # fmt: skip


@governor_app.command("status")
def status(
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    url: str | None = typer.Option(None, "--url", help="Daemon URL (default: from settings)."),
    as_json: bool = typer.Option(False, "--json", help="The governor section as JSON."),
) -> None:
    """Signals, thresholds, state, last action and next possible action. Exit 1 when no
    daemon answers or its governor is off."""
    try:
        settings = load_settings(config)
    except HeadframeError as e:
        typer.echo(f"headframe: {e.message}", err=True)
        raise typer.Exit(2) from None
    base = url or base_url(settings)
    try:
        doc = call(settings, base, "/status", timeout=10)
    except urllib.error.HTTPError as e:
        typer.echo(f"headframe governor status: {base} answered {e.code} {e.reason}", err=True)
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError) as e:
        typer.echo(f"no daemon answering at {base} ({getattr(e, 'reason', e)})", err=True)
        raise typer.Exit(1) from None
    section = doc.get("governor") if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        typer.echo(f"the daemon at {base} runs no governor ([governor] enabled = false)", err=True)
        raise typer.Exit(1)
    if as_json:
        json.dump(section, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return
    print_status(section)


def register(app: typer.Typer) -> None:
    app.add_typer(governor_app, name="governor")
