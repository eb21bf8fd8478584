"""The box's policy: the one place that decides which profile, floor, memory budget, pin
and objective apply to an application on this box.

``build_box(settings)`` probes the hardware, matches (or takes the forced) device profile
and returns a ``Box``; the daemon builds one at start and again on SIGHUP, the CLI builds
one per command. Everyone that selects a variant (the daemon's loader, the fleet chooser,
``models select``) asks the box for ``policy_for(app)`` or calls ``box.select(...)``;
none of them recomputes floors or pins.

The box also owns the one changeable layer: operator pins (HTTP admin, MQTT ``select``,
``headframe models use``), persisted in ``state_dir/pins.json`` so they survive a
restart, and governor overrides (held in memory only: a restart forgets pressure). Only
the change path (runtime.service.changes) changes them, around the swap that follows.
Precedence: operator pin > the settings' ``variant`` > governor override > automatic (a pin
wins over the governor, which then only reports what it would do).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.box.pins import PINS_FILE, Pin, PinState, PinStore
from runtime.catalog import PackageMeta, VariantMeta
from runtime.config import ApplicationSettings, Settings
from runtime.hardware.report import HardwareReport
from runtime.profiles import DeviceProfile, ProfileMatch
from runtime.selection import (
    Policy,
    Resources,
    Screened,
    Selection,
    rank,
    resources_for,
    screen,
)
from runtime.selection.measurement import Measurement, MeasurementKey

log = logging.getLogger(__name__)


class Box:
    """This box's policy, built once from settings and the probe (see ``build_box``)."""

    def __init__(
        self,
        settings: Settings,
        report: HardwareReport,
        profile: DeviceProfile,
        match: ProfileMatch | None,
        pins: PinStore,
    ) -> None:
        self.settings = settings
        self.report = report
        self.profile = profile
        self.match = match
        self.pins = pins
        self.resources: Resources = resources_for(profile, report, settings.memory_bytes)
        self._overrides: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    # ---- the static layer ----------------------------------------------------------
    def app_settings(self, app: str) -> ApplicationSettings | None:
        return next((a for a in self.settings.applications if a.name == app), None)

    def objective_for(self, app: str) -> str:
        site = self.app_settings(app)
        return (site.objective if site and site.objective else None) or self.settings.objective

    def batch_for(self, app: str) -> int:
        """The batch size the application is served with (what calibration times)."""
        site = self.app_settings(app)
        return site.max_batch if site else 1

    def floor_for(self, app: str) -> int | None:
        return site_floors(self.settings).get(app)

    # ---- the changeable layer ------------------------------------------------------
    def pin_for(self, app: str, governed: bool = True) -> PinState:
        """The pin in force; ``governed=False`` leaves the governor's override out (the
        fleet chooses a new version as the box would without pressure)."""
        pin = self.pins.get(app)
        if pin is not None:
            return PinState(pin.variant, "operator", pin.describe())
        site = self.app_settings(app)
        if site is not None and site.variant:
            return PinState(site.variant, "settings", "pinned by the settings file")
        with self._lock:
            override = self._overrides.get(app) if governed else None
        if override is not None:
            return PinState(override[0], "governor", f"governor override: {override[1]}")
        return PinState(None, "auto", "automatic")

    def set_pin(self, app: str, variant: str | None, source: str) -> Pin | None:
        """An operator's pin (None or "auto": clear it), persisted in the state dir."""
        return self.pins.set(app, None if variant in (None, "auto") else variant, source)

    def operator_pin(self, app: str) -> Pin | None:
        """The operator's pin of ``app`` as it is now (the change path keeps it to put
        back when a new pin cannot load)."""
        return self.pins.get(app)

    def restore_pin(self, app: str, pin: Pin | None) -> None:
        """Put back ``pin`` as it was (a select that failed to load undoes its pin)."""
        self.pins.restore(app, pin)

    def override(self, app: str, variant: str | None, reason: str = "") -> None:
        """The governor's seam: force ``variant`` under pressure, None to lift it.
        Not persisted: after a restart the governor decides afresh."""
        with self._lock:
            if variant is None:
                self._overrides.pop(app, None)
            else:
                self._overrides[app] = (variant, reason or "resource pressure")

    def carry_overrides(self, old: Box) -> None:
        """Keep ``old``'s governor overrides in this box (SIGHUP rebuilds the box; the
        pressure has not gone away with the old one)."""
        with old._lock:
            overrides = dict(old._overrides)
        with self._lock:
            self._overrides.update(overrides)

    # ---- the decision --------------------------------------------------------------
    def policy_for(
        self, app: str, force: str | None = None, unpinned: bool = False, governed: bool = True
    ) -> Policy:
        """The site policy for ``app``; ``force`` (a fleet trial's variant) wins over pins;
        ``unpinned``: every pin and override left out (the governor's ladder of rungs);
        ``governed=False``: the governor's override left out (the fleet's choice)."""
        state = self.pin_for(app, governed) if not unpinned else PinState(None, "auto", "automatic")
        # An operator's or the governor's pin says who and since when; the settings' one
        # is the site's policy.
        by_whom = state.source in ("operator", "governor")
        pin_text = state.text if by_whom else "pinned by site policy"
        return Policy(
            accuracy_floor_bp=self.floor_for(app),
            pin=force or state.variant,
            objective=self.objective_for(app),
            factor=self.settings.balanced_factor,
            pin_text="forced for this load" if force else pin_text,
        )

    def screen(
        self,
        package: PackageMeta,
        variants: Sequence[VariantMeta],
        *,
        force: str | None = None,
        unpinned: bool = False,
        governed: bool = True,
    ) -> Screened:
        """The static rules under this box's policy for the application: the first step of
        a decision (runtime.selection.screen); ``rank`` it with what was measured."""
        return screen(
            package,
            variants,
            self.profile,
            self.report,
            self.resources,
            self.policy_for(package.application, force, unpinned, governed),
        )

    def select(
        self,
        package: PackageMeta,
        variants: Sequence[VariantMeta],
        *,
        force: str | None = None,
        measurements: Mapping[MeasurementKey, Measurement] | None = None,
        unpinned: bool = False,
        governed: bool = True,
    ) -> Selection:
        """The whole decision when the measurements are in hand (or none)."""
        screened = self.screen(package, variants, force=force, unpinned=unpinned, governed=governed)
        return rank(screened, measurements)

    def describe(self) -> dict[str, Any]:
        """The box section of /status: profile, budget, objective, pins in force."""
        apps = sorted({a.name for a in self.settings.applications} | set(self.pins.all()))
        return {
            "profile": self.profile.name,
            "profile_reasons": list(self.match.reasons) if self.match else [],
            "memory_bytes": self.resources.memory_bytes,
            "memory_source": self.resources.source,
            "objective": self.settings.objective,
            "balanced_factor": self.settings.balanced_factor,
            "pins": {
                a: {"variant": s.variant, "source": s.source, "text": s.text}
                for a in apps
                if (s := self.pin_for(a)).variant is not None
            },
        }


def site_floors(settings: Settings) -> dict[str, int]:
    """The site's accuracy floors by application (they only raise the package's)."""
    return {a.name: a.accuracy_floor_bp for a in settings.applications if a.accuracy_floor_bp}


def pins_path(settings: Settings) -> Path:
    return Path(settings.paths.state_dir) / PINS_FILE


def build_box(
    settings: Settings,
    *,
    report: HardwareReport | None = None,
    root: str | Path = "/",
    pins: PinStore | None = None,
) -> Box:
    """Probe (unless ``report`` is given), match or force the profile, read the pins.
    BLOCKING (file reads, the live runtime probe): the daemon calls it in a thread.

    The probe imports no runtime: the profile matches on files, and a backend imports its
    runtime when it loads a model, so only the device lists selection reads are asked for
    (cold start pays only for those)."""
    from runtime.hardware.probe import probe, query_runtimes
    from runtime.profiles import default_profiles_dir, load_profiles, match, profile_by_name
    from runtime.selection import runtimes_selection_reads

    probed = report is None
    if report is None:
        report = probe(root, runtimes=())
    profiles = load_profiles(default_profiles_dir(settings))
    result = match(report, profiles)
    profile = result.profile
    if settings.profile:
        profile = profile_by_name(profiles, settings.profile)
        result = type(result)(
            profile, [f"forced by settings: profile = {profile.name!r}"], result.candidates
        )
    if probed:
        report = query_runtimes(report, runtimes_selection_reads(profile))
    return Box(settings, report, profile, result, pins or PinStore(pins_path(settings)))
