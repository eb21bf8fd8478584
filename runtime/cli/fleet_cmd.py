"""CLI: fleet updates. Cloud side: ``keys init``, ``publish``, ``bundle export``. Box side:
``fleet sync``, ``fleet status``, ``rollback``, ``bundle import``. Logic lives in
runtime/fleet/; this module parses, calls, and prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from runtime.errors import HeadframeError

keys_app = typer.Typer(help="Signing keys for the update repository.", no_args_is_help=True)
bundle_app = typer.Typer(help="Offline bundles for air-gapped sites.", no_args_is_help=True)
fleet_app = typer.Typer(help="This box's model updates.", no_args_is_help=True)

CONFIG_OPT = typer.Option(None, "--config", "-c", help="Settings file (TOML).")
WAIT_OPT = typer.Option(
    120.0, "--wait", min=0, help="Seconds to wait while the daemon (or another CLI) holds the lock."
)


def _fail(e: HeadframeError) -> None:
    typer.secho(f"error: {e.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except HeadframeError as e:
        _fail(e)


def _settings(config: Path | None) -> Any:
    from runtime.config import load_settings

    return load_settings(config)


# ---- cloud side ---------------------------------------------------------------------
@keys_app.command("init")
def keys_init(
    directory: Path = typer.Argument(..., help="Directory for the keys (created, mode 0700)."),
    force: bool = typer.Option(False, "--force", help="Replace existing keys."),
) -> None:
    """Make ed25519 keys for the root, targets, snapshot and timestamp roles."""
    from runtime.fleet.keys import init_keys

    with _errors():
        ids = init_keys(directory, force=force)
    for role, keyid in ids.items():
        typer.echo(f"{role:10} {keyid}")
    typer.echo(f"private keys in {directory} (mode 0600); keep root.key offline.")


def publish_cmd(
    package_dirs: list[Path] = typer.Argument(
        None, help="Model package or knowledge pack version directories to add."
    ),
    repo: Path = typer.Option(..., "--repo", help="Repository directory (created if new)."),
    keys: Path = typer.Option(..., "--keys", help="Key directory from `keys init`."),
    channel: str = typer.Option("stable", "--channel", help="stable, canary, or any name."),
    rollout: int = typer.Option(100, "--rollout", min=0, max=100, help="Percent of nodes."),
    expires: str = typer.Option("30d", "--expires", help="Targets and snapshot expiry."),
    timestamp_expires: str = typer.Option(
        "2d", "--timestamp-expires", help="Timestamp expiry: re-sign well inside it (daily)."
    ),
) -> None:
    """Add model packages and knowledge packs (a pack version's directory, e.g.
    <store>/_knowledge/manuals/1.0.0) to the signed repository (none: just re-sign
    snapshot and timestamp, the daily step that keeps online boxes accepting it)."""
    from runtime.fleet.publish import parse_expires, publish_all

    with _errors():
        delta = parse_expires(expires)
        ts_delta = parse_expires(timestamp_expires)
        done = publish_all(
            repo, keys, package_dirs or [], channel=channel, rollout=rollout, expires=delta,
            timestamp_expires=ts_delta,
        )  # fmt: skip
    for p in done.packages:
        typer.echo(f"published {p.application} {p.version} ({len(p.variants)} variants) "
                   f"to {channel} at {rollout}%")  # fmt: skip
    for m in done.packs:
        by = m.embedder.describe()
        typer.echo(f"published knowledge pack {m.pack} {m.version} ({m.chunks} chunks, "
                   f"embedded with {by}) to {channel} at {rollout}%")  # fmt: skip
    typer.echo(f"repository {repo}: serve {repo} as static files; "
               f"boxes trust {repo / 'metadata' / '1.root.json'}")  # fmt: skip


@bundle_app.command("export")
def bundle_export(
    out: Path = typer.Argument(..., help="The .tar to write."),
    repo: Path = typer.Option(..., "--repo", help="Repository directory."),
    keys: Path = typer.Option(..., "--keys", help="Key directory (targets, snapshot, timestamp)."),
    expires: str = typer.Option(
        "90d", "--expires", help="How long the bundle's metadata stays valid (it travels)."
    ),
) -> None:
    """Write the repository's current state to one tar, its metadata signed for longer."""
    from runtime.fleet.bundle import export_bundle
    from runtime.fleet.publish import parse_expires

    with _errors():
        members = export_bundle(repo, out, keys, expires=parse_expires(expires))
    typer.echo(f"{out}: {len(members)} files, metadata valid for {expires}")


@bundle_app.command("import")
def bundle_import(
    bundle: Path = typer.Argument(...),
    config: Path | None = CONFIG_OPT,
    wait: float = WAIT_OPT,
    max_gib: int = typer.Option(64, "--max-gib", min=1, help="Refuse bundles holding more."),
) -> None:
    """Install from an offline bundle, verified exactly as an online update. Nothing is
    extracted: the files are read out of the tar after every member is checked."""
    from runtime.fleet.bundle import Bundle

    with _errors(), Bundle(bundle, max_bytes=max_gib * 1024**3) as b:
        _sync(config, once=True, repo_url=b.url, fetcher=b, wait=wait)


# ---- box side -----------------------------------------------------------------------
def _progress_bar() -> tuple[Any, Callable[[str, int, int], None]]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), transient=False,
    )  # fmt: skip
    tasks: dict[str, Any] = {}

    def tick(app: str, done: int, total: int) -> None:
        if app not in tasks:
            tasks[app] = bar.add_task(app, total=total)
        bar.update(tasks[app], completed=done, total=total)

    return bar, tick


def _say_waiting(message: str) -> None:
    typer.secho(message, fg=typer.colors.YELLOW, err=True)


def _sync(
    config: Path | None,
    *,
    once: bool,
    wait: float,
    repo_url: str | None = None,
    fetcher: Any = None,
) -> None:
    from runtime.fleet.releases import PACKS_PREFIX
    from runtime.fleet.wiring import build_agent

    settings = _settings(config)
    bar, tick = _progress_bar()
    agent = build_agent(settings, progress=tick, lock_wait_s=wait, on_lock_wait=_say_waiting)
    if not once:
        with bar:
            agent.run_forever()
        return
    with bar:
        report = agent.sync_once(repo_url, fetcher=fetcher)
    status = agent.status()
    for app, outcome in report.outcomes.items():
        pack = app.removeprefix(f"{PACKS_PREFIX}/")
        rec = status["packs"].get(pack, {}) if pack != app else status["apps"].get(app, {})
        what = f"knowledge pack {pack}" if pack != app else app
        typer.echo(f"{what}: {outcome} - {rec.get('stage')}: {rec.get('reason')}")
    if report.error:
        typer.secho(f"error: {report.error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(0 if report.current else 1)


@fleet_app.command("sync")
def fleet_sync(
    once: bool = typer.Option(False, "--once", help="One cycle, then exit (0: box is current)."),
    config: Path | None = CONFIG_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """Check the repository and install updates (in the foreground)."""
    with _errors():
        _sync(config, once=once, wait=wait)


@fleet_app.command("status")
def fleet_status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Active, previous and pending version per application, with stage and reason."""
    from runtime.catalog import Store
    from runtime.fleet.state import FleetState
    from runtime.fleet.status import fleet_status as status_of
    from runtime.fleet.status import pack_status
    from runtime.knowledge.pack import PackStore

    with _errors():
        settings = _settings(config)
        fleet_dir = Path(settings.paths.state_dir) / "fleet"
        status = status_of(Store(settings.paths.store), FleetState(fleet_dir / "state.json"))
        status["packs"] = pack_status(
            PackStore(settings.paths.store), FleetState(fleet_dir / "packs.json")
        )
    if as_json:
        json.dump(status, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("application", "active", "previous", "pending", "stage", "reason")
    for app, rec in status["apps"].items():
        table.add_row(app, rec["active"] or "-", rec["previous"] or "-", rec["pending"] or "-",
                      rec["stage"], rec["reason"])  # fmt: skip
    Console().print(table)
    if status["packs"]:
        packs = Table("knowledge pack", "active", "previous", "pending", "stage", "reason")
        for pack, rec in status["packs"].items():
            packs.add_row(pack, rec["active"] or "-", rec["previous"] or "-",
                          rec["pending"] or "-", rec["stage"], rec["reason"])  # fmt: skip
        Console().print(packs)
    if status["last_error"]:
        typer.secho(f"last check failed: {status['last_error']}", fg=typer.colors.YELLOW)


def rollback_cmd(
    app_name: str = typer.Argument(..., metavar="NAME"),
    pack: bool = typer.Option(False, "--pack", help="NAME is a knowledge pack."),
    config: Path | None = CONFIG_OPT,
    wait: float = WAIT_OPT,
) -> None:
    """Serve the previous version of an application (or, with --pack, a knowledge pack)
    again; the current one is never retried."""
    from runtime.fleet.wiring import build_agent

    with _errors():
        agent = build_agent(
            _settings(config), with_backends=False, lock_wait_s=wait, on_lock_wait=_say_waiting
        )
        frm, to = agent.rollback_pack(app_name) if pack else agent.rollback(app_name)
    what = f"knowledge pack {app_name}" if pack else app_name
    typer.echo(f"{what}: rolled back from {frm} to {to}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(bundle_app, name="bundle")
    app.add_typer(fleet_app, name="fleet")
    app.command("publish")(publish_cmd)
    app.command("rollback")(rollback_cmd)
