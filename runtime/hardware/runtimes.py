"""What installed inference software can use: onnxruntime, OpenVINO, llama.cpp.

Live (root "/"): each runtime is imported and asked what it offers (onnxruntime's
execution providers, OpenVINO's available devices, llama.cpp's GPU offload support).
A missing or broken library is a ``RuntimeInfo(available=False, reason=...)``, never a
crash. Each source is timed by the caller, because importing OpenVINO alone can take
longer than the whole file probe.

Fixture trees (live False) import nothing. A fixture host describes its runtimes in
``<root>/.headframe-runtimes.toml``, one table per runtime::

    [onnxruntime]
    version = "1.18.1"
    devices = ["CUDAExecutionProvider", "CPUExecutionProvider"]

    [openvino]
    available = false
    reason = "not installed"

A runtime the file does not list, or every runtime when there is no file, is reported
unavailable with a reason that says so.

``runtime_presence`` says whether a runtime is installed, and its version, from package
metadata alone (``find_spec`` and ``importlib.metadata``): no import, so the daemon's cold
start pays only for the runtimes its models load (``queried`` False on such an entry).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from runtime.hardware.fixture_files import read_fixture
from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import RuntimeInfo

RUNTIMES = ("onnxruntime", "openvino", "llama_cpp")
FIXTURE_FILE = ".headframe-runtimes.toml"
_EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino", "llama_cpp": "llm"}
# The distributions that may install each runtime's Python package (its version without
# importing it); the first one installed is the one reported.
_DISTRIBUTIONS = {
    "onnxruntime": (
        "onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml",
        "onnxruntime-qnn", "onnxruntime-training",
    ),
    "openvino": ("openvino",),
    "llama_cpp": ("llama-cpp-python",),
}  # fmt: skip


class _FixtureRuntime(BaseModel):
    model_config = ConfigDict(extra="forbid")

    available: bool = True
    version: str | None = None
    devices: tuple[str, ...] = ()
    reason: str | None = None


class _FixtureFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    onnxruntime: _FixtureRuntime | None = None
    openvino: _FixtureRuntime | None = None
    llama_cpp: _FixtureRuntime | None = None


def runtimes_from_fixture(fs: HostFS) -> tuple[RuntimeInfo, ...]:
    """The runtimes a fixture host declares; nothing is imported."""
    path = fs.path("/" + FIXTURE_FILE)
    declared = read_fixture(fs, FIXTURE_FILE, _FixtureFile)
    if declared is None:
        reason = f"not probed: not the live host and no {FIXTURE_FILE} in {fs.root}"
        return tuple(RuntimeInfo(name=n, available=False, reason=reason) for n in RUNTIMES)
    infos = []
    for name in RUNTIMES:
        entry: _FixtureRuntime | None = getattr(declared, name)
        if entry is None:
            infos.append(RuntimeInfo(name, False, reason=f"not listed in {path}"))
        else:
            infos.append(
                RuntimeInfo(name, entry.available, entry.version, entry.devices, entry.reason)
            )
    return tuple(infos)


def _onnxruntime() -> RuntimeInfo:
    ort = importlib.import_module("onnxruntime")
    providers = tuple(ort.get_available_providers())
    return RuntimeInfo("onnxruntime", True, str(ort.__version__), providers)


def _openvino() -> RuntimeInfo:
    ov = importlib.import_module("openvino")
    devices = tuple(str(d) for d in ov.Core().available_devices)
    version = getattr(ov, "__version__", None) or str(ov.get_version())
    return RuntimeInfo("openvino", True, version, devices)


def _llama_cpp() -> RuntimeInfo:
    llama = importlib.import_module("llama_cpp")
    offload = bool(llama.llama_supports_gpu_offload())
    devices = ("cpu", "gpu") if offload else ("cpu",)
    reason = None if offload else "built without GPU offload: CPU only"
    return RuntimeInfo("llama_cpp", True, str(llama.__version__), devices, reason)


LIVE_PROBES: dict[str, Callable[[], RuntimeInfo]] = {
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "llama_cpp": _llama_cpp,
}


def probe_runtime_live(name: str) -> RuntimeInfo:
    """Import one runtime and ask it what it offers; any failure becomes a reason."""
    try:
        return LIVE_PROBES[name]()
    except ImportError as e:
        hint = f"not installed (pip install 'headframe[{_EXTRAS[name]}]'): {e}"
        return RuntimeInfo(name, False, reason=hint)
    except Exception as e:  # a broken install must not stop the box from starting
        return RuntimeInfo(name, False, reason=f"import or query failed: {type(e).__name__}: {e}")


def runtime_presence(name: str) -> RuntimeInfo:
    """Whether runtime ``name`` is installed and which version, without importing it
    (``queried`` False: its devices are not listed). A package that is present but broken
    shows up when a backend loads it, as that load attempt's error."""
    if importlib.util.find_spec(name) is None:
        hint = f"not installed (pip install 'headframe[{_EXTRAS[name]}]')"
        return RuntimeInfo(name, False, reason=hint, queried=False)
    version = None
    for dist in _DISTRIBUTIONS[name]:
        try:
            version = importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    return RuntimeInfo(name, True, version, queried=False)
