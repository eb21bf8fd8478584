"""The loader: decide which variant, verify its files, and load it along the fallback chain.

``VariantLoader(box, targets, measure)(package, force)`` is BLOCKING (the service runs it
in a thread). One decision runs the static rules once: the box screens every variant
(runtime.selection.screen: floor, pins, objective are the box's), ``measure(package,
candidates)`` measures the survivors (runtime.loading.calibrator: cached or measured now,
on this thread), and the box's ranking decides. ``loader(package, force, decided)`` loads
a decision made earlier (the change path's reselect) without deciding again.

For the chosen variant it tries each (backend, device) target the selection kept (those
that serve the package's task: backend_table ``task_problem``), in the profile's order;
when every target fails it moves to the next ranked variant. Every try is recorded as a
LoadAttempt with the error text, so /status can say what is in use and why the others
failed. Before a variant is loaded its files are checked against
variant.toml (runtime.loading.targets): a corrupted or swapped file fails that variant
with a clear message and the chain moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from runtime.backend_table import task_problem
from runtime.backends.base import Backend
from runtime.box import Box
from runtime.catalog import ModelPackage, Variant, VariantMeta
from runtime.errors import BackendLoadError, HeadframeError
from runtime.loading.targets import FileCheckError, TargetLoader
from runtime.profiles import Target
from runtime.selection import Selection, rank
from runtime.selection.measurement import Measurement, MeasurementKey

# measure(package, candidates) -> the measurements ranking reads
# (runtime.loading.calibrator.Calibrator.measurements)
Measure = Callable[
    [ModelPackage, Sequence[tuple[VariantMeta, Target]]], Mapping[MeasurementKey, Measurement]
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadAttempt:
    """One try: ``variant`` id on ``backend``/``device``; ``error`` says why it failed."""

    variant: str
    backend: str
    device: str
    ok: bool
    error: str | None = None

    def describe(self) -> str:
        where = f"{self.variant} on {self.backend}/{self.device}"
        return f"{where}: loaded" if self.ok else f"{where}: {self.error}"


@dataclass
class LoadedModel:
    """A variant loaded and ready: the backend in use and how it got there."""

    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Selection
    attempts: list[LoadAttempt] = field(default_factory=list)


class VariantLoader:
    """Decides (through the box) and loads variants for one box. ``targets`` loads one
    variant on one target (the calibrator's too, when it measures: pass the same one);
    ``measure`` (None: no calibration) measures a decision's survivors."""

    def __init__(
        self, box: Box, targets: TargetLoader | None = None, measure: Measure | None = None
    ) -> None:
        self.box = box
        self.targets = targets or TargetLoader(box)
        self.measure = measure

    def select(
        self,
        package: ModelPackage,
        pin: str | None = None,
        *,
        unpinned: bool = False,
        governed: bool = True,
    ) -> Selection:
        """The box's decision for ``package``; ``pin`` forces a variant (a fleet trial, an
        activation's winner) over the box's own pins; ``unpinned`` leaves every pin out
        (the governor's rungs), ``governed=False`` the governor's override (the fleet's
        pick). Static rules once, then the survivors measured (cache, else calibration
        within its budget) unless forced, then ranked. The measured survivors are those
        the operator's or the settings' pin leaves (never fewer for the governor's
        override: a step down is no reason to measure less)."""
        screened = self.box.screen(
            package.meta,
            [v.meta for v in package.variants],
            force=pin,
            unpinned=unpinned,
            governed=governed,
        )
        measurements = None
        if self.measure is not None and pin is None:
            measured_pin = self.box.pin_for(package.application, governed=False).variant
            measurements = self.measure(package, screened.candidates(measured_pin))
        return rank(screened, measurements)

    def __call__(
        self, package: ModelPackage, pin: str | None = None, decided: Selection | None = None
    ) -> LoadedModel:
        selection = decided if decided is not None else self.select(package, pin)
        label = f"{package.application} {package.version}"
        if selection.chosen is None:
            details = "; ".join(f"{r.variant.variant}: {r.reason}" for r in selection.rejected)
            raise BackendLoadError(
                f"no variant of {label} can run here: {selection.reason}"
                + (f" ({details})" if details else "")
            )
        attempts: list[LoadAttempt] = []
        for choice in selection.ranked:
            variant = package.variant(choice.variant.variant)
            try:
                self.targets.verify_files(variant)
            except FileCheckError as e:
                log.warning("%s: %s", label, e.message)
                attempts.append(
                    LoadAttempt(variant.id, choice.backend, choice.device, False, e.message)
                )
                continue
            for target in choice.targets:
                backend = self._try(variant, target, attempts, package.meta.task)
                if backend is not None:
                    log.info(
                        "%s: loaded %s on %s/%s after %d attempt(s)",
                        label,
                        variant.id,
                        target.backend,
                        target.device,
                        len(attempts),
                    )
                    return LoadedModel(package, variant, backend, selection, attempts)
        lines = "; ".join(a.describe() for a in attempts)
        raise BackendLoadError(f"could not load any variant of {label}: {lines}", attempts)

    def _try(
        self, variant: Variant, target: Target, attempts: list[LoadAttempt], task: str = "tensor"
    ) -> Backend | None:
        if (problem := task_problem(target.backend, task)) is not None:
            # Selection keeps such targets out; a hand-made target list must not slip one in.
            attempts.append(LoadAttempt(variant.id, target.backend, target.device, False, problem))
            return None
        try:
            backend = self.targets.load_verified(variant, target, task)
        except HeadframeError as e:
            error = e.message
        except Exception as e:  # a runtime's own exception type: record it, try the next
            error = f"{type(e).__name__}: {e}"
        else:
            attempts.append(LoadAttempt(variant.id, target.backend, target.device, True))
            return backend
        log.warning("%s on %s/%s failed: %s", variant.id, target.backend, target.device, error)
        attempts.append(LoadAttempt(variant.id, target.backend, target.device, False, error))
        return None
