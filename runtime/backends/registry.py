"""The backend table: name -> module path, imported only when a backend is created.

Nothing here imports a native runtime. A backend whose Python package is missing is
reported as unavailable with the reason (``BackendUnavailable``), never as an
ImportError at start-up, so a box without llama-cpp-python still serves its ONNX models.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass

from runtime.backends.base import Backend
from runtime.errors import BackendUnavailable
from runtime.hardware.report import HardwareReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendEntry:
    """How to find one backend and what it needs."""

    module: str  # imported lazily by create_backend
    cls: str  # the Backend class in that module
    runtime: str  # the RuntimeInfo name in the HardwareReport, also the Python package
    formats: tuple[str, ...]  # variant formats it opens
    extra: str  # the pip extra that installs the runtime


BACKENDS: dict[str, BackendEntry] = {
    "onnx": BackendEntry("runtime.backends.onnx", "OnnxBackend", "onnxruntime", ("onnx",), "onnx"),
    # OpenVINO reads its own IR and ONNX files directly.
    "openvino": BackendEntry(
        "runtime.backends.openvino", "OpenVinoBackend", "openvino", ("openvino", "onnx"), "openvino"
    ),
    "llama": BackendEntry("runtime.backends.llama", "LlamaBackend", "llama_cpp", ("gguf",), "llm"),
}


def entry(name: str) -> BackendEntry:
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
        return f"{e.runtime} is not installed (pip install 'headframe[{e.extra}]')"
    if not info.available:
        why = info.reason or "not importable"
        return f"{e.runtime} is not usable: {why}"
    return None


def available_backends(report: HardwareReport) -> dict[str, str | None]:
    """Every known backend -> None when usable here, else the reason it is not."""
    result: dict[str, str | None] = {}
    for name, e in BACKENDS.items():
        problem = runtime_problem(name, report)
        if problem is None and importlib.util.find_spec(e.module) is None:
            problem = f"the {name} backend ({e.module}) is not part of this build"
        result[name] = problem
    return result


def create_backend(name: str) -> Backend:
    """A new, unloaded backend instance. Imports its module now, the runtime at load().

    Raises BackendUnavailable when the name is unknown, the module is missing from this
    build, or the runtime's Python package is not installed.
    """
    e = entry(name)
    if importlib.util.find_spec(e.runtime) is None:
        raise BackendUnavailable(
            f"the {name} backend needs {e.runtime}, which is not installed "
            f"(pip install 'headframe[{e.extra}]')"
        )
    try:
        module = importlib.import_module(e.module)
    except ImportError as err:
        raise BackendUnavailable(f"the {name} backend cannot be imported: {err}") from err
    cls = getattr(module, e.cls, None)
    if cls is None:
        raise BackendUnavailable(f"{e.module} has no backend class {e.cls}")
    backend: Backend = cls()
    log.debug("created backend %s from %s", name, e.module)
    return backend
