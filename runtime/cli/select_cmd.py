"""CLI: ``models select`` (what this box would run, and why), ``models calibrate``
(measure the candidates now), and the offline half of ``models use`` (serve_cmd).

Parsing and printing only: the decision is runtime.box's, the measuring
runtime.loading.calibrator's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from runtime.catalog import ModelPackage, Store
from runtime.cli.output import STORE_HELP, fail, print_json, print_table
from runtime.errors import HeadframeError
from runtime.units import percent_bp

EXIT_NOTHING_QUALIFIES = 3


def register(group: typer.Typer) -> None:
    """``select`` and ``calibrate`` join the ``models`` group (``use`` is serve_cmd's)."""
    group.command("select")(select_variant)
    group.command("calibrate")(calibrate)


def _select_package(store: Store, app: str, version: str | None, demo: bool) -> ModelPackage:
    """The package to decide for; builds the demo catalog first when it is the demo app
    and the store does not have it yet (settings.demo, as the daemon does)."""
    from runtime.demo.factory import APP as DEMO_APP

    if app == DEMO_APP and demo and not store.versions(app):
        from runtime.demo import build_demo_catalog

        typer.echo(f"building the demo catalog into {store.root} (first use)...", err=True)
        build_demo_catalog(store.root)
    return store.load(app, version)


def what_if(settings: Any, app: str, **changes: Any) -> Any:
    """``settings`` with the command line's what-ifs applied (None: leave as set):
    ``profile``, ``memory_bytes``, ``objective``, and ``floor_bp`` as the site floor of
    ``app`` (it replaces the site floor; the package's floor still applies)."""
    from runtime.config import ApplicationSettings

    top = {k: v for k, v in changes.items() if k != "floor_bp" and v is not None}
    floor = changes.get("floor_bp")
    apps = list(settings.applications)
    if floor is not None:
        site = next((a for a in apps if a.name == app), None)
        new = (site or ApplicationSettings(name=app)).model_copy(
            update={"accuracy_floor_bp": floor}
        )
        apps = [a for a in apps if a.name != app] + [new]
    return settings.model_copy(update={**top, "applications": apps})


def _print_selection(selection: Any, box: Any) -> None:
    from runtime.units import human_bytes

    resources, profile = box.resources, box.profile
    pin = box.pin_for(selection.application)
    typer.echo(
        f"{selection.application} {selection.version} on profile {profile.name}: memory budget "
        f"{human_bytes(selection.budget_bytes)} ({profile.memory_budget_fraction:.0%} of "
        f"{human_bytes(resources.memory_bytes)} {resources.source}), "
        f"accuracy floor {percent_bp(selection.accuracy_floor_bp)}, objective {selection.objective}"
        + (f", {pin.text}: {pin.variant}" if pin.variant else "")
    )
    if selection.chosen is None:
        typer.echo(f"chosen: none: {selection.reason}")
    else:
        c = selection.chosen
        chain = ", ".join(f"{t.backend}/{t.device}" for t in c.targets)
        typer.echo(
            f"chosen: {c.variant.variant} ({c.variant.format} {c.variant.precision}, "
            f"{human_bytes(c.variant.bytes)}, accuracy {percent_bp(c.variant.accuracy_bp)}) "
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
        None, "--accuracy-floor-bp", min=0, max=10_000, help="Site accuracy floor (bp)."
    ),
    pin: str | None = typer.Option(None, "--variant", help="Pin this variant id."),
    version: str | None = typer.Option(
        None, "--version", help="Package version (default: active)."
    ),
    objective: str | None = typer.Option(
        None, "--objective", help="smallest, fastest or balanced (default: the settings')."
    ),
    measure: bool = typer.Option(
        False, "--measure", help="Measure the candidates here (or read the cache) first."
    ),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Which variant of APP this box would run, and why every other one is turned down.

    The box's policy decides (site floor, operator pin, objective); the options are
    what-ifs on top of the settings. Exit status 3 when no variant qualifies."""
    from runtime.box import build_box
    from runtime.config import load_settings

    try:
        settings = what_if(
            load_settings(),
            app,
            profile=profile_name,
            memory_bytes=memory_bytes,
            floor_bp=floor_bp,
            objective=_objective(objective),
        )
        store = Store(store_dir) if store_dir is not None else Store(settings.paths.store)
        box = build_box(settings, root=root if root is not None else "/")
        package = _select_package(store, app, version, settings.demo)
    except HeadframeError as e:
        raise fail(e.message, 2) from e
    measurements = None
    if measure:
        from runtime.loading.calibrator import measuring_loader

        measurements = measuring_loader(box)[1].measurements(package)
    metas = [v.meta for v in package.variants]
    selection = box.select(package.meta, metas, force=pin, measurements=measurements)
    selection = _without_broken(selection, {v.id: v.file_problems() for v in package.variants})
    if as_json:
        print_json(selection.to_dict())
    else:
        if selection.measurements:
            _print_measured(selection.measurements, package)
        _print_selection(selection, box)
    if selection.chosen is None:
        raise typer.Exit(EXIT_NOTHING_QUALIFIES)


def _objective(name: str | None) -> str | None:
    from runtime.selection.ranking import OBJECTIVES

    if name is not None and name not in OBJECTIVES:
        raise fail(f"--objective {name!r}: one of {', '.join(OBJECTIVES)}", 2)
    return name


def _print_measured(measurements: Any, package: ModelPackage) -> None:
    """The measured table: one row per candidate, with the build-time figure beside."""
    build = {v.id: v.meta.accuracy_bp for v in package.variants}
    rows = [
        [
            m.variant,
            f"{m.backend}/{m.device}",
            "-" if m.p50_us is None else f"{m.p50_us} us",
            "-" if m.p99_us is None else f"{m.p99_us} us",
            str(m.batch),
            percent_bp(m.quality_bp),
            percent_bp(build.get(m.variant)),
            "-" if m.load_ms is None else f"{m.load_ms} ms",
            "ok" if m.ok and not m.error else (m.error or "failed"),
        ]
        for m in measurements
    ]
    headers = ["CANDIDATE", "ON", "P50", "P99", "BATCH", "QUALITY HERE", "AT BUILD", "LOAD"]
    print_table([*headers, "RESULT"], rows)
    typer.echo("")


def calibrate(
    app: str = typer.Argument(..., help="Application name."),
    force: bool = typer.Option(False, "--force", help="Measure again, ignoring the cache."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Measure every candidate of APP on this box (quality on the golden set, p50/p99 at
    the served batch, load time) within the calibration budget, and cache the results
    (state_dir/calibration.json) for the daemon. Prints what was measured and the choice."""
    from runtime.box import build_box
    from runtime.config import load_settings
    from runtime.loading.calibrator import measuring_loader

    try:
        settings = load_settings()
        store = Store(store_dir) if store_dir is not None else Store(settings.paths.store)
        box = build_box(settings)
        package = _select_package(store, app, None, settings.demo)
    except HeadframeError as e:
        raise fail(e.message, 2) from e
    calibrator = measuring_loader(box)[1]
    measurements = calibrator.measurements(package, force=force)
    selection = box.select(
        package.meta, [v.meta for v in package.variants], measurements=measurements
    )
    last = calibrator.last.get(app, {})
    if as_json:
        print_json({"calibration": last, "selection": selection.to_dict()})
    else:
        if measurements:
            _print_measured(selection.measurements, package)
        typer.echo(
            f"{app} {package.version}: {len(measurements)} candidate(s) in "
            f"{last.get('seconds', 0):.2f} s (budget {last.get('budget_s', 0):g} s), "
            f"{last.get('from_cache', 0)} from the cache, "
            f"{last.get('not_measured', 0)} not measured (budget)"
        )
        if selection.chosen is not None:
            typer.echo(f"chosen: {selection.chosen.variant.variant}: {selection.reason}")
        else:
            typer.echo(f"chosen: none: {selection.reason}")
    if selection.chosen is None:
        raise typer.Exit(EXIT_NOTHING_QUALIFIES)


def pin_offline(settings: Any, app: str, variant: str) -> None:
    """``models use`` with no daemon running: write the pin into the state directory
    (runtime.box reads it at the next start); "auto" clears it. Exit 2 on a variant the
    active package does not have."""
    from runtime.box import PinStore, pins_path

    try:
        if variant != "auto":
            package = Store(settings.paths.store).load(app)
            known = [v.id for v in package.variants]
            if variant not in known:
                raise fail(f"{app} has no variant {variant!r} (it has {', '.join(known)})", 2)
        pin = PinStore(pins_path(settings)).set(app, None if variant == "auto" else variant, "cli")
    except HeadframeError as e:
        raise fail(e.message, 2) from e
    except OSError as e:
        raise fail(f"{pins_path(settings)}: cannot write the pin: {e.strerror}", 2) from e
    if pin is None:
        typer.echo(f"{app}: pin cleared; the box chooses automatically")
    else:
        typer.echo(f"{app}: {pin.describe()}: {pin.variant}")
