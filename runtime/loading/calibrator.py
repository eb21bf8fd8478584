"""Calibration on the box: measure every candidate (variant x backend x device) that
passes the static rules before choosing, and remember what was measured.

For each candidate the static rules keep, in their order: load it (load time, resident memory
growth), run the golden set through it (quality in the package's metric, scored by
runtime.loading.golden_run exactly as the fleet trial scores it) and a timed loop at the batch
size the application is served with (p50, p99). The whole application gets a time budget
(``calibration.tensor_budget_s`` / ``text_budget_s``): a candidate runs on its own thread,
which checks the deadline between calls and stops there, and is cut when the budget runs
out (recorded as failed with the reason); candidates left when it is spent are not
measured and rank after every measured one.

Results are cached as JSON in ``state_dir/calibration.json``, keyed by the variant's file
digests, backend, device, the runtime's version, the device's model as the probe reports
it, the profile and the batch: a changed key re-measures, a restart reads the cache (no
start-up cost after the first), ``force`` re-measures. A corrupt cache file is discarded
with a warning.

BLOCKING: the loader calls ``measurements`` on its worker thread, never on the event loop,
with the survivors of the decision it is making (the static rules run once per decision).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from runtime.backend_table import BACKENDS
from runtime.backends.base import Backend
from runtime.box import Box
from runtime.catalog import ModelPackage, Variant, VariantMeta
from runtime.files import atomic_write_json
from runtime.loading import golden_run
from runtime.loading.loader import VariantLoader
from runtime.loading.targets import TargetLoader
from runtime.profiles import Target
from runtime.selection.measurement import Measurement, MeasurementKey

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

CACHE_FILE = "calibration.json"
CACHE_VERSION = 1

# load_target(variant, target, task) -> a loaded Backend (runtime.loading.targets.TargetLoader)
LoadTarget = Callable[[Variant, Target, str], Backend]


class CalibrationCache:
    """Measurements by key in one JSON file, written atomically; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, Measurement] = {}
        try:
            raw = json.loads(self.path.read_text())
            if raw.get("version") != CACHE_VERSION:
                raise ValueError(f"cache version {raw.get('version')!r}")
            self._entries = {k: Measurement.from_dict(v) for k, v in raw["entries"].items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("%s is corrupt (%s); discarding it and measuring again", self.path, e)

    def get(self, key: str) -> Measurement | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, m: Measurement) -> None:
        with self._lock:
            self._entries[key] = m
            doc = {
                "version": CACHE_VERSION,
                "entries": {k: v.to_dict() for k, v in sorted(self._entries.items())},
            }
            atomic_write_json(self.path, doc)


def cache_key(box: Box, variant: Variant, target: Target, batch: int) -> str:
    """Variant digest, backend, device, runtime version, device model, profile, batch."""
    digest = hashlib.sha256(
        "".join(sorted(f.sha256 for f in variant.meta.files)).encode()
    ).hexdigest()[:32]
    info = box.report.runtime(BACKENDS[target.backend].runtime)
    runtime_version = info.version if info and info.version else "unknown"
    cls = target.device.split(".")[0]
    if cls in ("gpu", "npu"):
        found = box.report.accelerators_of(cls)
        hw = ";".join(f"{a.vendor} {a.model} {a.compute_capability or ''}".strip() for a in found)
    else:
        hw = box.report.cpu.model
    parts = [digest, target.backend, target.device, runtime_version, hw, box.profile.name]
    return "|".join([*parts, f"batch={batch}"])


def _rss_bytes() -> int:
    """This process's resident memory now."""
    return int(psutil.Process().memory_info().rss)


class Calibrator:
    """``measurements(package)``: cached, else measured now within the budget."""

    def __init__(self, box: Box, load_target: LoadTarget, cache: CalibrationCache) -> None:
        self.box = box
        self.load_target = load_target
        self.cache = cache
        # app -> what the last pass did, for /status, the page and MQTT info
        self.last: dict[str, dict[str, Any]] = {}
        # One application measures at a time (two at once would time each other's load);
        # an application whose measurements are all cached never waits for it.
        self._measuring = threading.Lock()

    def budget_s(self, package: ModelPackage) -> float:
        cal = self.box.settings.calibration
        return cal.text_budget_s if package.meta.task == "text" else cal.tensor_budget_s

    def candidates(self, package: ModelPackage) -> list[tuple[VariantMeta, Target]]:
        """What the static rules keep of ``package`` under the operator's or the settings'
        pin (the governor's override left out: a step down under pressure is no reason to
        measure less): for a caller that has no decision in hand (``headframe models
        calibrate``); the loader measures its own decision's survivors."""
        screened = self.box.screen(package.meta, [v.meta for v in package.variants], governed=False)
        return screened.candidates(self.box.pin_for(package.application, governed=False).variant)

    def measurements(
        self,
        package: ModelPackage,
        candidates: Sequence[tuple[VariantMeta, Target]] | None = None,
        *,
        force: bool = False,
    ) -> dict[MeasurementKey, Measurement]:
        """Every candidate (variant, target), in order, measured (or read from the cache);
        ``candidates`` None: what the static rules keep (``candidates``)."""
        if package.meta.golden is None:
            return {}  # nothing to score or time with: the static rule decides
        if not self.box.settings.calibration.enabled and not force:
            return {}
        app = package.application
        if candidates is None:
            candidates = self.candidates(package)
        batch = self.box.batch_for(app)
        chosen = [(package.variant(v.variant), t) for v, t in candidates]
        keys = [cache_key(self.box, v, t, batch) for v, t in chosen]
        if not force and all(self.cache.get(k) is not None for k in keys):
            return self._pass(package, chosen, keys, batch, force)
        with self._measuring:
            return self._pass(package, chosen, keys, batch, force)

    def _pass(
        self,
        package: ModelPackage,
        candidates: list[tuple[Variant, Target]],
        keys: list[str],
        batch: int,
        force: bool,
    ) -> dict[MeasurementKey, Measurement]:
        app = package.application
        budget = self.budget_s(package)
        started = time.monotonic()
        deadline = started + budget
        found: dict[MeasurementKey, Measurement] = {}
        cached = skipped = 0
        for (variant, target), key in zip(candidates, keys, strict=True):
            hit = None if force else self.cache.get(key)
            if hit is not None:
                found[hit.key] = hit
                cached += 1
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                skipped += 1
                continue
            m = self._measure_bounded(package, variant, target, batch, left, budget)
            self.cache.put(key, m)
            found[m.key] = m
            log.info("%s: calibrated %s: %s", app, f"{m.variant} on "
                     f"{m.backend}/{m.device}", m.describe())  # fmt: skip
        self.last[app] = {
            "version": package.version,
            "at": time.time(),
            "seconds": round(time.monotonic() - started, 3),
            "budget_s": budget,
            "from_cache": cached,
            "not_measured": skipped,
            "measurements": [m.to_dict() for m in found.values()],
        }
        return found

    def _measure_bounded(
        self,
        package: ModelPackage,
        variant: Variant,
        target: Target,
        batch: int,
        left_s: float,
        budget_s: float,
    ) -> Measurement:
        """One candidate on its own thread, cut at ``left_s``. The measuring loop checks
        the same deadline between calls, so the thread ends at its next call; a runtime
        call that hangs cannot be interrupted, so the caller does not wait for it. The
        thread is not a daemon: an interpreter that exits waits for it instead of tearing
        the runtime down under a call in flight (which aborted the process, exit 134)."""
        box: list[Measurement] = []
        deadline = time.monotonic() + left_s
        worker = threading.Thread(
            target=lambda: box.append(
                self._measure(package, variant, target, batch, deadline, budget_s)
            ),
            name=f"calibrate-{variant.id}",
            daemon=False,
        )
        started = time.time()
        worker.start()
        worker.join(left_s)
        if box:
            return box[0]
        return Measurement(
            variant.id,
            target.backend,
            target.device,
            False,
            f"did not finish within the calibration budget ({budget_s:g} s for the application)",
            batch=batch,
            measured_at=started,
            seconds=round(left_s, 3),
        )

    def _measure(
        self,
        package: ModelPackage,
        variant: Variant,
        target: Target,
        batch: int,
        deadline: float,
        budget_s: float,
    ) -> Measurement:
        t0 = time.monotonic()
        where = (variant.id, target.backend, target.device)
        base = Measurement(*where, False, metric=package.meta.metric, batch=batch,
                           measured_at=time.time())  # fmt: skip

        def done(**fields: Any) -> Measurement:
            return replace(base, seconds=round(time.monotonic() - t0, 3), **fields)

        rss0 = _rss_bytes()
        try:
            backend = self.load_target(variant, target, package.meta.task)
        except Exception as e:
            error = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            return done(error=f"load failed: {error}")
        load_ms = int((time.monotonic() - t0) * 1000)
        rss1 = _rss_bytes()
        growth = rss1 - rss0
        try:
            data = golden_run.read_golden(package)
            if data is None:
                raise golden_run.GoldenProblem("the package has no golden set to time")
            scored = golden_run.score(package, backend, data, deadline)
            p50 = p99 = None
            if scored.request is not None:
                runs = self.box.settings.calibration.timed_runs
                timings = golden_run.time_requests(scored.request, runs, batch, deadline)
                p50 = int(np.percentile(timings, 50))
                p99 = int(np.percentile(timings, 99))
            return done(ok=True, quality_bp=scored.quality_bp, p50_us=p50, p99_us=p99,
                        load_ms=load_ms, rss_growth_bytes=growth)  # fmt: skip
        except golden_run.OutOfTime:
            return done(error=f"did not finish within the calibration budget ({budget_s:g} s "
                        "for the application)", load_ms=load_ms)  # fmt: skip
        except golden_run.GoldenProblem as e:
            # The package's golden file is at fault, not this candidate: it loaded, so it
            # stays a candidate, unranked by speed (the static rule places it).
            return done(ok=True, error=e.reason, load_ms=load_ms)
        except Exception as e:  # a crash in the runtime: the candidate failed, say why
            return done(error=f"inference failed: {type(e).__name__}: {e}", load_ms=load_ms)
        finally:
            try:
                backend.unload()
            except Exception:
                log.exception("unloading calibration candidate %s failed", variant.id)


def measured_metric_families(slots: Iterable[Any]) -> list[Metric]:
    """/metrics: each served application's chosen candidate's measured p50 (and p99),
    from the selection it was loaded with (runtime.service.ModelSlot), as
    prometheus_client families (the daemon registers this as a metrics source)."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    labels = ["app", "variant", "backend", "device"]
    p50 = GaugeMetricFamily(
        "headframe_selected_p50_microseconds",
        "The serving variant's p50 latency as calibration measured it on this box, "
        "at the served batch.",
        labels=labels,
    )
    p99 = GaugeMetricFamily(
        "headframe_selected_p99_microseconds",
        "The serving variant's measured p99 latency.",
        labels=labels,
    )
    for slot in slots:
        chosen = getattr(slot.selection, "chosen", None)
        m = getattr(chosen, "measured", None)
        if m is None or m.p50_us is None or m.variant != slot.variant.id:
            continue
        values = [slot.app, m.variant, m.backend, m.device]
        p50.add_metric(values, m.p50_us)
        if m.p99_us is not None:
            p99.add_metric(values, m.p99_us)
    return [p50, p99]


def measuring_loader(box: Box) -> tuple[VariantLoader, Calibrator]:
    """A VariantLoader for ``box`` that measures before it chooses, and its Calibrator
    (the cache in ``state_dir/calibration.json``), each given what it needs: the command
    line's and the fleet CLI's way to build both (the daemon builds its own)."""
    targets = TargetLoader(box)
    cache = CalibrationCache(Path(box.settings.paths.state_dir) / CACHE_FILE)
    calibrator = Calibrator(box, targets.load_target, cache)
    return VariantLoader(box, targets, calibrator.measurements), calibrator
