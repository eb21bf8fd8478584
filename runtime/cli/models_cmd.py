"""CLI: the `models` commands (list, show, add, remove; `select` lives beside them).

Parsing and printing only: the store is runtime.catalog, importing is
runtime.catalog.add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from runtime.catalog import ModelPackage, Variant
from runtime.cli.output import STORE_HELP, fail, print_json, print_table, resolve_store
from runtime.errors import HeadframeError
from runtime.units import human_bytes, percent_bp

models_app = typer.Typer(
    name="models",
    help="The model store: list, show, add and remove model packages.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app (``models build`` lives in build_cmd)."""
    from runtime.cli import build_cmd, select_cmd

    build_cmd.register(models_app)
    select_cmd.register(models_app)
    app.add_typer(models_app)


def variant_dict(v: Variant) -> dict[str, Any]:
    return {**v.meta.model_dump(mode="json"), "path": str(v.path)}


def package_dict(p: ModelPackage) -> dict[str, Any]:
    return {
        **p.meta.model_dump(mode="json"),
        "path": str(p.path),
        "variants": [variant_dict(v) for v in p.variants],
    }


def _operator_pin(app: str) -> Any:
    """The operator's pin of ``app`` kept in the state directory (runtime.box), or None."""
    from runtime.box import PinStore, pins_path
    from runtime.config import load_settings

    try:
        return PinStore(pins_path(load_settings())).get(app)
    except HeadframeError:
        return None


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
    pin = _operator_pin(app)
    if as_json:
        data = package_dict(package)
        for v in data["variants"]:
            v["file_problems"] = problems[v["variant"]]
        data["pin"] = pin.to_dict() if pin else None
        print_json(data)
        return
    m = package.meta
    typer.echo(f"{m.application} {m.version} ({m.task})  {package.path}")
    if m.description:
        typer.echo(f"  {m.description}")
    lin = m.lineage
    typer.echo(f"  lineage: {lin.foundation} -> {lin.sector} -> {lin.application}")
    typer.echo(
        f"  accuracy floor: {percent_bp(m.accuracy_floor_bp)}"
        + (f"   latency budget: {m.latency_budget_us} us" if m.latency_budget_us else "")
    )
    for label, specs in (("inputs", m.inputs), ("outputs", m.outputs)):
        if specs:
            text = ", ".join(f"{t.name} {t.datatype} {list(t.shape)}" for t in specs)
            typer.echo(f"  {label}: {text}")
    if m.golden is not None:
        typer.echo(f"  golden set: {m.golden.file} ({m.golden.samples} samples)")
    if pin is not None:
        typer.echo(f"  {pin.describe()}: {pin.variant} (headframe models use {app} auto clears it)")
    typer.echo("")
    rows = [
        [
            v.id,
            v.meta.format,
            v.meta.precision,
            percent_bp(v.meta.pruning_bp, digits=0),
            human_bytes(v.meta.bytes),
            human_bytes(v.meta.peak_memory_bytes),
            percent_bp(v.meta.accuracy_bp),
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
    task: str | None = typer.Option(
        None,
        "--task",
        help="tensor, text or embedding (default: what the file says: a GGUF encoder "
        "architecture or pooling type is embedding; an ONNX encoder needs tokenizer.json "
        "beside it).",
    ),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the imported package as JSON."),
) -> None:
    """Import a package, or wrap one model file into a one-variant package."""
    from runtime.catalog.add import import_path
    from runtime.cli.daemon_link import store_change_note
    from runtime.loading.import_check import trial_load

    if task is not None and task not in ("tensor", "text", "embedding"):
        raise fail(f"--task: {task!r} is not one of tensor, text, embedding", 2)
    store = resolve_store(store_dir)
    try:
        # A model file is loaded once by the runtimes here before it is installed: one
        # they cannot load is refused now, not when a daemon first serves it.
        package = import_path(store, path, app, version, replace=replace, task=task,
                              check=trial_load)  # fmt: skip
    except HeadframeError as e:  # bad input: one line, exit 2 (as `models build`)
        raise fail(e.message, 2) from e
    app, active = package.application, store.active_version(package.application)
    effect = "serves it" if active == package.version else f"keeps serving {app} {active}"
    note = store_change_note(store, app, effect)
    if as_json:
        print_json(package_dict(package))
        typer.echo(note, err=True)
        return
    typer.echo(f"added {app} {package.version} to {store.root}")
    typer.echo(f"  task: {package.meta.description}")
    for v in package.variants:
        typer.echo(
            f"  {v.id}: {v.meta.format} {v.meta.precision}, {human_bytes(v.meta.bytes)}, "
            f"accuracy {percent_bp(v.meta.accuracy_bp)}"
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
    from runtime.catalog.writer import remove_package
    from runtime.cli.daemon_link import store_change_note

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
