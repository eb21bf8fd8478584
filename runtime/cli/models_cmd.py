"""CLI: the `models` commands (list, show, add, remove; `select` lives beside them).

Parsing and printing only: the store is runtime.catalog, importing is
runtime.catalog_import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer

from runtime.catalog import ModelPackage, Store, Variant
from runtime.errors import HeadframeError
from runtime.units import human_bytes

models_app = typer.Typer(
    name="models",
    help="The model store: list, show, add and remove model packages.",
    no_args_is_help=True,
)

STORE_HELP = "Model store directory (default: paths.store from the settings)."


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app (``models build`` lives in build_cmd)."""
    from runtime.cli import build_cmd

    build_cmd.register(models_app)
    app.add_typer(models_app)


# --- helpers shared by the models commands ------------------------------------------------


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


def variant_dict(v: Variant) -> dict[str, Any]:
    return {**v.meta.model_dump(mode="json"), "path": str(v.path)}


def package_dict(p: ModelPackage) -> dict[str, Any]:
    return {
        **p.meta.model_dump(mode="json"),
        "path": str(p.path),
        "variants": [variant_dict(v) for v in p.variants],
    }


def _bp(value: int | None) -> str:
    return "-" if value is None else f"{value / 100:.2f}%"


# --- list / show / add -------------------------------------------------------------------


@models_app.command("list")
def list_models(
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout."),
) -> None:
    """Every application in the store with its active version and variants."""
    store = resolve_store(store_dir)
    entries: list[dict[str, Any]] = []
    for app in store.applications():
        entry: dict[str, Any] = {"application": app, "versions": store.versions(app)}
        try:
            entry["active_version"] = store.active_version(app)
            package = store.load(app)
            entry["task"] = package.meta.task
            entry["variants"] = [v.id for v in package.variants]
            entry["smallest_bytes"] = min(v.meta.bytes for v in package.variants)
        except HeadframeError as e:  # one broken package must not hide the others
            entry["error"] = e.message
        entries.append(entry)
    if as_json:
        print_json(entries)
        return
    if not entries:
        typer.echo(f"no models in {store.root} (try: headframe demo build)")
        return
    rows = [
        [
            e["application"],
            str(e.get("active_version") or "-"),
            ", ".join(e["versions"]),
            e.get("task", "-"),
            str(len(e.get("variants", []))) if "error" not in e else "invalid: " + e["error"],
            human_bytes(e["smallest_bytes"]) if "smallest_bytes" in e else "-",
        ]
        for e in entries
    ]
    print_table(["APPLICATION", "ACTIVE", "VERSIONS", "TASK", "VARIANTS", "SMALLEST"], rows)


@models_app.command("show")
def show_model(
    app: str = typer.Argument(..., help="Application name."),
    version: str | None = typer.Option(None, "--version", help="Default: the active version."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """One package: lineage, schema, golden set and every variant's measured figures,
    and whether each variant's files are on disk (FILES; a missing one is named)."""
    store = resolve_store(store_dir)
    try:
        package = store.load(app, version)
    except HeadframeError as e:
        raise fail(e.message) from e
    problems = {v.id: v.file_problems() for v in package.variants}
    if as_json:
        data = package_dict(package)
        for v in data["variants"]:
            v["file_problems"] = problems[v["variant"]]
        print_json(data)
        return
    m = package.meta
    typer.echo(f"{m.application} {m.version} ({m.task})  {package.path}")
    if m.description:
        typer.echo(f"  {m.description}")
    lin = m.lineage
    typer.echo(f"  lineage: {lin.foundation} -> {lin.sector} -> {lin.application}")
    typer.echo(
        f"  accuracy floor: {_bp(m.accuracy_floor_bp)}"
        + (f"   latency budget: {m.latency_budget_us} us" if m.latency_budget_us else "")
    )
    for label, specs in (("inputs", m.inputs), ("outputs", m.outputs)):
        if specs:
            text = ", ".join(f"{t.name} {t.datatype} {list(t.shape)}" for t in specs)
            typer.echo(f"  {label}: {text}")
    if m.golden is not None:
        typer.echo(f"  golden set: {m.golden.file} ({m.golden.samples} samples)")
    typer.echo("")
    rows = [
        [
            v.id,
            v.meta.format,
            v.meta.precision,
            f"{v.meta.pruning_bp / 100:.0f}%",
            human_bytes(v.meta.bytes),
            human_bytes(v.meta.peak_memory_bytes),
            _bp(v.meta.accuracy_bp),
            "-" if v.meta.latency_us is None else f"{v.meta.latency_us} us",
            ",".join(v.meta.device_classes),
            "BROKEN" if problems[v.id] else "ok",
        ]
        for v in sorted(package.variants, key=lambda v: -v.meta.bytes)
    ]
    headers = ["VARIANT", "FORMAT", "PRECISION", "PRUNED", "BYTES", "PEAK MEM", "ACCURACY"]
    print_table([*headers, "LATENCY", "DEVICES", "FILES"], rows)
    for vid, found in problems.items():
        if found:
            typer.echo(f"warning: {vid} cannot load: {'; '.join(found)}", err=True)


@models_app.command("add")
def add_model(
    path: Path = typer.Argument(
        ..., help="A package directory, or a .onnx, OpenVINO .xml (with .bin) or .gguf file."
    ),
    app: str | None = typer.Option(None, "--app", help="Application name (default: from PATH)."),
    version: str | None = typer.Option(None, "--version", help="Version (default: 1.0.0)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite that version if present."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the imported package as JSON."),
) -> None:
    """Import a package, or wrap one model file into a one-variant package."""
    from runtime.catalog_import import import_path
    from runtime.cli.daemon_link import store_change_note

    store = resolve_store(store_dir)
    try:
        package = import_path(store, path, app, version, replace=replace)
    except HeadframeError as e:
        raise fail(e.message) from e
    app, active = package.application, store.active_version(package.application)
    effect = "serves it" if active == package.version else f"keeps serving {app} {active}"
    note = store_change_note(store, app, effect)
    if as_json:
        print_json(package_dict(package))
        typer.echo(note, err=True)
        return
    typer.echo(f"added {app} {package.version} to {store.root}")
    for v in package.variants:
        typer.echo(
            f"  {v.id}: {v.meta.format} {v.meta.precision}, {human_bytes(v.meta.bytes)}, "
            f"accuracy {_bp(v.meta.accuracy_bp)}"
        )
    if active != package.version:
        typer.echo(f"{store.pointer_path(app)} names {active}: that version stays active")
    typer.echo(note)


@models_app.command("remove")
def remove_model(
    app: str = typer.Argument(..., help="Application name."),
    version: str | None = typer.Option(
        None, "--version", help="Remove only this version (default: the whole application)."
    ),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Delete an application, or one of its versions, from the store (a running daemon
    that watches the store stops serving it, or serves the version now active)."""
    from runtime.cli.daemon_link import store_change_note
    from runtime.package_writer import remove_package

    store = resolve_store(store_dir)
    try:
        removed = remove_package(store, app, version)
    except HeadframeError as e:
        raise fail(e.message) from e
    typer.echo(f"removed {app} {', '.join(removed)} from {store.root}")
    active = store.active_version(app)
    typer.echo(
        store_change_note(store, app, f"serves {app} {active}" if active else "stops serving it")
    )


# --- select ------------------------------------------------------------------------------

EXIT_NOTHING_QUALIFIES = 3


def _select_package(store: Store, app: str, version: str | None, demo: bool) -> ModelPackage:
    """The package to decide for; builds the demo catalog first when it is the demo app
    and the store does not have it yet (settings.demo, as the daemon does)."""
    from runtime.demo.factory import APP as DEMO_APP

    if app == DEMO_APP and demo and not store.versions(app):
        from runtime.demo import build_demo_catalog

        typer.echo(f"building the demo catalog into {store.root} (first use)...", err=True)
        build_demo_catalog(store.root)
    return store.load(app, version)


def _select_profile(report: Any, settings: Any, name: str | None) -> Any:
    from runtime.profiles import default_profiles_dir, load_profiles, match, profile_by_name

    profiles = load_profiles(default_profiles_dir(settings))
    name = name or settings.profile
    if name:
        return profile_by_name(profiles, name)
    return match(report, profiles).profile


def _print_selection(selection: Any, resources: Any, profile: Any) -> None:
    typer.echo(
        f"{selection.application} {selection.version} on profile {profile.name}: memory budget "
        f"{human_bytes(selection.budget_bytes)} ({profile.memory_budget_fraction:.0%} of "
        f"{human_bytes(resources.memory_bytes)} {resources.source}), "
        f"accuracy floor {_bp(selection.accuracy_floor_bp)}"
    )
    if selection.chosen is None:
        typer.echo(f"chosen: none: {selection.reason}")
    else:
        c = selection.chosen
        chain = ", ".join(f"{t.backend}/{t.device}" for t in c.targets)
        typer.echo(
            f"chosen: {c.variant.variant} ({c.variant.format} {c.variant.precision}, "
            f"{human_bytes(c.variant.bytes)}, accuracy {_bp(c.variant.accuracy_bp)}) "
            f"on {chain}"
        )
        typer.echo(f"  why: {selection.reason}")
    for i, c in enumerate(selection.ranked[1:], start=1):
        typer.echo(f"fallback {i}: {c.variant.variant} ({human_bytes(c.variant.bytes)})")
    for r in selection.rejected:
        typer.echo(f"rejected: {r.variant.variant} ({human_bytes(r.variant.bytes)}): {r.reason}")


def _without_broken(selection: Any, problems: dict[str, list[str]]) -> Any:
    """The selection as the loader will live it: it skips a ranked variant whose files
    fail their check and takes the next, so one with files missing is never "chosen";
    it moves to the rejected with the reason, and every rejection says so too."""
    from dataclasses import replace

    from runtime.selection import Rejection

    def why(vid: str) -> str:
        return "files: " + "; ".join(problems[vid])

    broken = [c for c in selection.ranked if problems.get(c.variant.variant)]
    if not broken and not any(problems.values()):
        return selection
    ranked = [c for c in selection.ranked if not problems.get(c.variant.variant)]
    rejected = [
        Rejection(r.variant, f"{r.reason}; {why(r.variant.variant)}")
        if problems.get(r.variant.variant)
        else r
        for r in selection.rejected
    ] + [Rejection(c.variant, why(c.variant.variant)) for c in broken]
    rejected.sort(key=lambda r: (r.variant.bytes, r.variant.variant))
    chosen = ranked[0] if ranked else None
    reason = selection.reason
    if selection.chosen is not None and chosen is not selection.chosen:
        lost = selection.chosen.variant.variant
        reason = f"{lost} would be chosen but {why(lost)}; " + (
            f"the next in rank is {chosen.variant.variant}" if chosen else "none is left"
        )
    return replace(selection, chosen=chosen, ranked=ranked, rejected=rejected, reason=reason)


@models_app.command("select")
def select_variant(
    app: str = typer.Argument(..., help="Application name, e.g. part-id-reader."),
    root: Path | None = typer.Option(
        None, "--root", help="Probe this root tree instead of this machine (a fixture host)."
    ),
    profile_name: str | None = typer.Option(
        None, "--profile", help="Use this device profile instead of the matched one."
    ),
    memory_bytes: int | None = typer.Option(
        None, "--memory-bytes", min=1, help="Pretend the box has this much memory (bytes)."
    ),
    floor_bp: int | None = typer.Option(
        None, "--accuracy-floor-bp", min=0, max=10_000, help="Raise the accuracy floor (bp)."
    ),
    pin: str | None = typer.Option(None, "--variant", help="Pin this variant id."),
    version: str | None = typer.Option(
        None, "--version", help="Package version (default: active)."
    ),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Which variant of APP this box would run, and why every other one is turned down.

    Exit status 3 when no variant qualifies."""
    from runtime.config import load_settings
    from runtime.hardware import probe
    from runtime.selection import Policy, resources_for, select

    try:
        settings = load_settings()
        store = Store(store_dir) if store_dir is not None else Store(settings.paths.store)
        report = probe(root if root is not None else "/")
        profile = _select_profile(report, settings, profile_name)
        package = _select_package(store, app, version, settings.demo)
    except HeadframeError as e:
        raise fail(e.message, 2) from e
    site = next((a for a in settings.applications if a.name == app), None)
    floors = [f for f in (floor_bp, site.accuracy_floor_bp if site else None) if f is not None]
    policy = Policy(
        accuracy_floor_bp=max(floors) if floors else None,
        pin=pin or (site.variant if site else None),
    )
    resources = resources_for(profile, report, memory_bytes or settings.memory_bytes)
    selection = select(
        package.meta, [v.meta for v in package.variants], profile, report, resources, policy
    )
    selection = _without_broken(selection, {v.id: v.file_problems() for v in package.variants})
    if as_json:
        print_json(selection.to_dict())
    else:
        _print_selection(selection, resources, profile)
    if selection.chosen is None:
        raise typer.Exit(EXIT_NOTHING_QUALIFIES)
