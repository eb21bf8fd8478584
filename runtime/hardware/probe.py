"""``probe(root="/", live=None) -> HardwareReport``: read a host, decide nothing.

Two stages, timed separately in ``report.timings`` (seconds per source):
1. files, always: /proc, /sys, /dev and /etc read relative to ``root``, so a directory
   tree is a complete fake host. On a live box this takes a few milliseconds.
2. live enrichment, only when ``live`` (default: root is "/"): psutil, NVML, and the
   inference runtimes, each imported and asked what it offers. This is the slow part
   (importing OpenVINO dominates) and every source may be missing. ``runtimes`` limits
   the imports to those names; the others are found from package metadata alone
   (``RuntimeInfo.queried`` False) and ``query_runtimes`` lists their devices later.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from runtime.backend_table import runtimes as known_runtimes
from runtime.errors import ProbeError
from runtime.hardware.board import probe_board
from runtime.hardware.capture import RecordingHostFS, write_live_answers
from runtime.hardware.cpu import probe_cpu
from runtime.hardware.devices import probe_devices
from runtime.hardware.hostfs import HostFS
from runtime.hardware.memory import probe_memory
from runtime.hardware.nvml import merge_nvml, nvml_from_fixture, query_nvml
from runtime.hardware.pci import probe_pci
from runtime.hardware.report import HardwareReport, MemoryInfo, RuntimeInfo
from runtime.hardware.runtimes import probe_runtime_live, runtime_presence, runtimes_from_fixture
from runtime.hardware.thermal import probe_thermal

log = logging.getLogger(__name__)
T = TypeVar("T")

# /dev subdirectories whose entries profiles may match on (device_paths_any).
_DEV_SUBDIRS = ("dri", "accel", "nvgpu")


def _timed(timings: dict[str, float], name: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    try:
        return fn()
    finally:
        timings[name] = time.perf_counter() - start


def _device_nodes(fs: HostFS) -> tuple[str, ...]:
    top = fs.listdir("/dev")
    nodes = [f"/dev/{n}" for n in top]
    for sub in _DEV_SUBDIRS:
        if sub in top:
            nodes += [f"/dev/{sub}/{n}" for n in fs.listdir(f"/dev/{sub}")]
    return tuple(nodes)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise ProbeError(f"{root}: probe root is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ProbeError(f"{root}: probe root is not readable")


def probe(
    root: str | Path = "/",
    *,
    live: bool | None = None,
    record_into: str | Path | None = None,
    runtimes: Collection[str] | None = None,
) -> HardwareReport:
    """Read the host under ``root``. Raises ProbeError when root is not a readable Linux tree.

    ``runtimes``: on a live host, import and query only these (default: every one); the
    rest are reported from package metadata, not imported.

    ``record_into``: also copy every file read, and what live software said, into that
    (new or empty) directory, which then serves as a fixture host that reproduces this
    report (``runtime.hardware.capture``). If the probe fails, nothing is left there.
    """
    _check_root(Path(root))
    if record_into is None:
        return _probe(HostFS(root), root, live, runtimes)
    fs = RecordingHostFS(root, record_into)
    try:
        report = _probe(fs, root, live, known_runtimes())
        write_live_answers(report, fs.into)
    except BaseException:
        fs.discard()
        raise
    return report


def _probe(
    fs: HostFS, root: str | Path, live: bool | None, query: Collection[str] | None
) -> HardwareReport:
    if live is None:
        live = fs.is_live
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cpu = _timed(timings, "cpuinfo", lambda: probe_cpu(fs, platform.machine() if live else None))
    if cpu is None:
        raise ProbeError(f"{fs.path('/proc/cpuinfo')}: not readable; is {root} a Linux root tree?")
    memory = _timed(timings, "meminfo", lambda: probe_memory(fs))
    if memory is None and not live:
        raise ProbeError(f"{fs.path('/proc/meminfo')}: not readable or has no MemTotal")
    pci = _timed(timings, "pci", lambda: probe_pci(fs))
    board = _timed(timings, "board", lambda: probe_board(fs))
    accelerators = _timed(timings, "devices", lambda: probe_devices(fs, pci, board))
    nodes = _timed(timings, "dev_nodes", lambda: _device_nodes(fs))
    thermal = _timed(timings, "thermal", lambda: probe_thermal(fs))
    runtimes: tuple[RuntimeInfo, ...] = ()
    if not live:  # what live software said when the tree was saved, if it kept that
        runtimes = _timed(timings, "runtimes", lambda: runtimes_from_fixture(fs))
        saved_nvml = _timed(timings, "nvml", lambda: nvml_from_fixture(fs))
        accelerators = merge_nvml(accelerators, saved_nvml)
    timings["files_total"] = time.perf_counter() - start
    report = HardwareReport(
        cpu=cpu,
        memory=memory or MemoryInfo(total_bytes=0),
        accelerators=accelerators,
        board=board,
        thermal=thermal,
        runtimes=runtimes,
        root=str(root),
        pci=pci,
        device_nodes=nodes,
        timings=timings,
    )
    if live:
        report = _enrich(report, timings, known_runtimes() if query is None else query)
    return report


def _runtime(name: str, query: Collection[str]) -> RuntimeInfo:
    return probe_runtime_live(name) if name in query else runtime_presence(name)


def query_runtimes(report: HardwareReport, names: Collection[str]) -> HardwareReport:
    """``report`` with the runtimes in ``names`` that were found by presence alone now
    imported and asked for their devices (timed); every other entry unchanged. BLOCKING."""
    timings = dict(report.timings)
    runtimes = tuple(
        _timed(timings, r.name, partial(probe_runtime_live, r.name))
        if r.name in names and not r.queried
        else r
        for r in report.runtimes
    )
    return replace(report, runtimes=runtimes, timings=timings)


def _enrich(
    report: HardwareReport, timings: dict[str, float], query: Collection[str]
) -> HardwareReport:
    """Fill in what only live software can say. Every source is optional and timed."""
    start = time.perf_counter()
    notes = list(report.notes)
    cpu, memory = report.cpu, report.memory
    psutil = None
    try:
        psutil = _timed(timings, "psutil", lambda: __import__("psutil"))
        vm = psutil.virtual_memory()
        memory = replace(memory, total_bytes=int(vm.total), available_bytes=int(vm.available))
    except Exception as e:  # psutil is a core dependency, but a stripped image may lack it
        notes.append(f"psutil: {type(e).__name__}: {e}")
    logical = os.cpu_count()
    if logical and logical != cpu.cores:
        # /proc/cpuinfo lists what the kernel sees; os.cpu_count what is online.
        cpu = replace(cpu, cores=logical)
    if cpu.physical_cores is None and psutil is not None:
        cpu = replace(cpu, physical_cores=psutil.cpu_count(logical=False))
    accelerators = report.accelerators
    try:
        gpus = _timed(timings, "nvml", query_nvml)
        accelerators = merge_nvml(accelerators, gpus)
    except ImportError as e:
        notes.append(f"nvml: not installed (pip install 'headframe[gpu]'): {e}")
    except Exception as e:  # no driver, no GPU: a fact, not a failure
        notes.append(f"nvml: {type(e).__name__}: {e}".rstrip(": "))
    runtimes = tuple(_timed(timings, n, partial(_runtime, n, query)) for n in known_runtimes())
    timings["live_total"] = time.perf_counter() - start
    log.debug("live enrichment took %.3f s: %s", timings["live_total"], timings)
    return replace(
        report,
        cpu=cpu,
        memory=memory,
        accelerators=accelerators,
        runtimes=runtimes,
        notes=tuple(notes),
        timings=timings,
    )
