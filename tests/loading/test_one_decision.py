"""One decision, one run of the static rules: static screen -> measure the survivors ->
rank, whether the decision is a load, a SIGHUP's reselect (which loads the decision it
made, not a second one) or an operator's pin. Counted through a real store and a real
box whose ``screen`` the test wraps with a counter, and the real calibrator's
``measurements`` likewise."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runtime.box import Box, PinStore, pins_path
from runtime.catalog import Store
from runtime.config import Settings
from runtime.loading.calibrator import CACHE_FILE, CalibrationCache, Calibrator
from runtime.loading.loader import VariantLoader
from runtime.loading.targets import TargetLoader
from runtime.selection import Screened
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from tests.support.serving_models import write_linear_package
from tests.support.synthetic import local_report, make_profile

APP = "part-id-reader"


class CountingBox(Box):
    """The real box, counting how often the static rules run."""

    screens = 0

    def screen(self, *args: Any, **kwargs: Any) -> Screened:
        self.screens += 1
        return super().screen(*args, **kwargs)


def test_the_static_rules_run_once_per_decision(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    write_linear_package(store.root)
    settings = Settings(demo=False, paths={"state_dir": tmp_path / "state"})
    box = CountingBox(settings, local_report(), make_profile(), None, PinStore(pins_path(settings)))
    targets = TargetLoader(box)
    calibrator = Calibrator(
        box, targets.load_target, CalibrationCache(tmp_path / "state" / CACHE_FILE)
    )
    measured: list[list[str]] = []

    def measure(package: Any, candidates: Any) -> Any:
        measured.append([v.variant for v, _ in candidates])
        return calibrator.measurements(package, candidates)

    loader = VariantLoader(box, targets, measure)

    async def main() -> list[tuple[int, int]]:
        counts = []
        service = InferenceService(loader)
        changes = ChangePath(service, lambda: box)
        await changes.start(store, [APP])  # the start-up load
        counts.append((box.screens, len(measured)))
        await changes.reselect("sighup", store, loader.select, [APP])  # nothing changed
        counts.append((box.screens, len(measured)))
        write_linear_package(store.root, version="2.0.0", seed=5)
        await changes.reselect("sighup", store, loader.select, [APP])  # a new version: swap
        counts.append((box.screens, len(measured)))
        await changes.pin(APP, "small", "http")  # the operator's pin: one more decision
        counts.append((box.screens, len(measured)))
        assert service.slot(APP).package.version == "2.0.0"
        assert service.slot(APP).variant.id == "small"
        await service.close()
        return counts

    assert asyncio.run(main()) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    # Each decision measured the survivors of its own screen (each variant on each of the
    # profile's targets): both variants, then under the operator's pin only the pinned one.
    assert [set(m) for m in measured] == [{"small", "large"}] * 3 + [{"small"}]
