"""What installed inference software can use: the runtimes of the backend table
(runtime/backend_table.py: onnxruntime, OpenVINO, llama.cpp).

Live (root "/"): each runtime is imported and asked what it offers through its table
row's ``offers`` (onnxruntime's execution providers, OpenVINO's available devices,
llama.cpp's GPU offload support).
A missing or broken library is a ``RuntimeInfo(available=False, reason=...)``, never a
crash. Each source is timed by the caller, because importing OpenVINO alone can take
longer than the whole file probe.

Fixture trees (live False) import nothing. A fixture host describes its runtimes in
``<root>/.headframe-runtimes.toml``, one table per runtime (a name the backend table does
not know is an error)::

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

from pydantic import BaseModel, ConfigDict, RootModel, model_validator

from runtime.backend_table import runtime_row, runtimes
from runtime.hardware.fixture_files import read_fixture
from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import RuntimeInfo

FIXTURE_FILE = ".headframe-runtimes.toml"


class _FixtureRuntime(BaseModel):
    model_config = ConfigDict(extra="forbid")

    available: bool = True
    version: str | None = None
    devices: tuple[str, ...] = ()
    reason: str | None = None


class _FixtureFile(RootModel[dict[str, _FixtureRuntime]]):
    """One table per runtime that some backend in runtime/backend_table.py needs."""

    @model_validator(mode="after")
    def _known_runtimes(self) -> _FixtureFile:
        unknown = sorted(set(self.root) - set(runtimes()))
        if unknown:
            raise ValueError(f"unknown runtime {unknown}; known: {', '.join(runtimes())}")
        return self


def runtimes_from_fixture(fs: HostFS) -> tuple[RuntimeInfo, ...]:
    """The runtimes a fixture host declares; nothing is imported."""
    path = fs.path("/" + FIXTURE_FILE)
    declared = read_fixture(fs, FIXTURE_FILE, _FixtureFile)
    if declared is None:
        reason = f"not probed: not the live host and no {FIXTURE_FILE} in {fs.root}"
        return tuple(RuntimeInfo(name=n, available=False, reason=reason) for n in runtimes())
    infos = []
    for name in runtimes():
        entry = declared.root.get(name)
        if entry is None:
            infos.append(RuntimeInfo(name, False, reason=f"not listed in {path}"))
        else:
            infos.append(
                RuntimeInfo(name, entry.available, entry.version, entry.devices, entry.reason)
            )
    return tuple(infos)


def probe_runtime_live(name: str) -> RuntimeInfo:
    """Import one runtime and ask it what it offers (its table row's ``offers``); any
    failure becomes a reason."""
    row = runtime_row(name)
    try:
        version, devices, note = row.offers(importlib.import_module(name))
    except ImportError as e:
        return RuntimeInfo(name, False, reason=f"not installed ({row.install_hint()}): {e}")
    except Exception as e:  # a broken install must not stop the box from starting
        return RuntimeInfo(name, False, reason=f"import or query failed: {type(e).__name__}: {e}")
    return RuntimeInfo(name, True, version, devices, note)


def runtime_presence(name: str) -> RuntimeInfo:
    """Whether runtime ``name`` is installed and which version, without importing it
    (``queried`` False: its devices are not listed). A package that is present but broken
    shows up when a backend loads it, as that load attempt's error."""
    row = runtime_row(name)
    if importlib.util.find_spec(name) is None:
        hint = f"not installed ({row.install_hint()})"
        return RuntimeInfo(name, False, reason=hint, queried=False)
    version = None
    for dist in row.distributions:  # the first one installed is the one reported
        try:
            version = importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    return RuntimeInfo(name, True, version, queried=False)
