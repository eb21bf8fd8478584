"""The backends' code, found through the backend table (runtime/backend_table.py) and
imported only when needed: a backend's class when one is created, its ``device_problem``
rule when selection asks about one of its targets.

Nothing here imports a native runtime. A backend whose Python package is missing is
reported as unavailable with the reason (``BackendUnavailable``), never as an
ImportError at start-up, so a box without llama-cpp-python still serves its ONNX models.

A backend's file holds its ``Backend`` class and, optionally, a pure
``device_problem(target, variant, report) -> str | None``: why its runtime cannot drive
the target's device on this box (onnxruntime's providers, OpenVINO's device list,
llama.cpp's GPU offload). The checks every backend shares (the runtime is installed, the
variant is built for that device class, the box has such a device) are made here first;
that the backend runs on the class at all (the row's ``device_classes``) is checked when
a device profile is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from types import ModuleType
from typing import TYPE_CHECKING

from runtime.backend_table import BACKENDS, BackendRow
from runtime.backends.base import Backend
from runtime.errors import BackendUnavailable

if TYPE_CHECKING:
    from runtime.catalog import VariantMeta
    from runtime.hardware.report import HardwareReport
    from runtime.profiles import Target

log = logging.getLogger(__name__)


def entry(name: str) -> BackendRow:
    """The table row for ``name``; BackendUnavailable naming the known ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(BACKENDS)
        raise BackendUnavailable(f"unknown backend {name!r} (known: {known})") from None


def backends_for_format(fmt: str) -> list[str]:
    """Backend names that open variants of format ``fmt``, in table order."""
    return [name for name, e in BACKENDS.items() if fmt in e.formats]


def runtime_problem(name: str, report: HardwareReport) -> str | None:
    """Why backend ``name`` cannot run on the box ``report`` describes, or None if it can.

    Pure: reads the report only (selection uses it on metadata alone).
    """
    e = entry(name)
    info = report.runtime(e.runtime)
    if info is None:
        return f"{e.runtime} is not installed ({e.install_hint()})"
    if not info.available:
        why = info.reason or "not importable"
        return f"{e.runtime} is not usable: {why}"
    return None


def device_class(device: str) -> str:
    """ "gpu.1" -> "gpu"."""
    return device.split(".")[0]


def device_problem(target: Target, variant: VariantMeta, report: HardwareReport) -> str | None:
    """Why ``target`` cannot run ``variant`` on this box, or None. Pure (reads the
    metadata and the report); the runtime's presence is checked before this
    (``runtime_problem``). The shared checks first, then the backend's own rule."""
    row = entry(target.backend)
    cls = device_class(target.device)
    if cls != "auto" and cls not in variant.device_classes:
        return (
            f"the variant is not built for {cls} (it runs on {', '.join(variant.device_classes)})"
        )
    if cls in ("gpu", "npu") and not report.accelerators_of(cls):
        return f"no {cls.upper()} in this box"
    try:
        module = _module(row)
    except BackendUnavailable as err:
        return str(err)
    rule = getattr(module, "device_problem", None)
    return rule(target, variant, report) if rule is not None else None


def available_backends(report: HardwareReport) -> dict[str, str | None]:
    """Every known backend -> None when usable here, else the reason it is not."""
    result: dict[str, str | None] = {}
    for name, e in BACKENDS.items():
        problem = runtime_problem(name, report)
        if problem is None and importlib.util.find_spec(e.module) is None:
            problem = f"the {name} backend ({e.module}) is not part of this build"
        result[name] = problem
    return result


def _module(row: BackendRow) -> ModuleType:
    try:
        return importlib.import_module(row.module)
    except ImportError as err:
        raise BackendUnavailable(f"the {row.name} backend cannot be imported: {err}") from err


def create_backend(name: str) -> Backend:
    """A new, unloaded backend instance. Imports its module now, the runtime at load().

    Raises BackendUnavailable when the name is unknown, the module is missing from this
    build, or the runtime's Python package is not installed.
    """
    e = entry(name)
    if importlib.util.find_spec(e.runtime) is None:
        raise BackendUnavailable(
            f"the {name} backend needs {e.runtime}, which is not installed ({e.install_hint()})"
        )
    cls = getattr(_module(e), e.cls, None)
    if cls is None:
        raise BackendUnavailable(f"{e.module} has no backend class {e.cls}")
    backend: Backend = cls()
    log.debug("created backend %s from %s", name, e.module)
    return backend
