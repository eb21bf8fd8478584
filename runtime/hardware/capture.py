"""Save what the probe read on this host as a fixture tree: ``headframe detect --save-tree``.

A support case ("why did this box pick the CPU profile?") needs the files the probe saw,
not a screenshot. ``RecordingHostFS`` reads exactly as ``HostFS`` does and copies every
file it reads, and a placeholder for every name it lists or tests, into a directory. That
directory is then a fake host: ``headframe detect --root DIR`` on any machine reproduces
the file stage of the probe, and ``write_live_answers`` adds what live software said (the
inference runtimes, NVML's GPU memory) so that the report and the profile match reproduce
too. Only what the probe reads is copied (CPU, memory, PCI ids, device nodes, thermal
zones): no logs, no configuration, no credentials.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import tomli_w

from runtime.errors import ProbeError
from runtime.hardware.hostfs import HostFS
from runtime.hardware.nvml import NVML_FIXTURE_FILE, nvml_of
from runtime.hardware.report import HardwareReport
from runtime.hardware.runtimes import FIXTURE_FILE

_SURROGATE = re.compile("[\ud800-\udfff]")


class RecordingHostFS(HostFS):
    """A HostFS that mirrors every path it touches into ``into``.

    Files read keep their content; names that were only listed, globbed or tested become
    empty files, or directories where the host has a directory. Device nodes become empty
    files, which is all the probe asks of them (that they exist).
    """

    def __init__(self, root: str | Path, into: str | Path) -> None:
        super().__init__(root)
        self.into = Path(into)
        self._made_into = not os.path.lexists(self.into)
        try:
            self.into.mkdir(parents=True, exist_ok=True)
            empty = not any(self.into.iterdir())
        except OSError as e:
            raise ProbeError(f"{self.into}: cannot create the tree directory: {e}") from e
        if not empty:
            raise ProbeError(f"{self.into}: not empty; save the tree into a new directory")

    def discard(self) -> None:
        """Remove what this recorder wrote (the probe failed): a half tree would replay as
        a different host. The directory itself goes too if this recorder made it."""
        if self._made_into:
            shutil.rmtree(self.into, ignore_errors=True)
            return
        for child in list(self.into.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def _mirror(self, host_path: str) -> Path:
        return self.into / host_path.lstrip("/")

    def _placeholder(self, host_path: str) -> None:
        target = self._mirror(host_path)
        if os.path.lexists(target):
            return
        try:
            if os.path.isdir(self.path(host_path)):
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
        except OSError as e:
            raise ProbeError(f"{target}: cannot write the tree: {e}") from e

    def read_text(self, host_path: str) -> str | None:
        text = super().read_text(host_path)
        if text is not None:
            target = self._mirror(host_path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8", errors="surrogateescape")
            except OSError as e:
                raise ProbeError(f"{target}: cannot write the tree: {e}") from e
        return text

    def exists(self, host_path: str) -> bool:
        found = super().exists(host_path)
        if found:
            self._placeholder(host_path)
        return found

    def listdir(self, host_path: str) -> list[str]:
        names = super().listdir(host_path)
        if names or os.path.isdir(self.path(host_path)):
            self._mirror(host_path).mkdir(parents=True, exist_ok=True)
        for name in names:
            self._placeholder(f"{host_path.rstrip('/')}/{name}")
        return names

    def glob(self, pattern: str) -> list[str]:
        hits = super().glob(pattern)
        for hit in hits:
            self._placeholder(hit)
        return hits


def write_live_answers(report: HardwareReport, into: str | Path) -> list[Path]:
    """Keep what live software said beside the tree, in the files a fixture host is read
    with: the inference runtimes (.headframe-runtimes.toml) and, when NVML answered, the
    NVIDIA GPUs (.headframe-nvml.toml). A file the tree already has (copied from a fixture
    root) is left as it is. Returns the files written."""
    into = Path(into)
    texts: dict[str, str] = {}
    runtimes: dict[str, Any] = {}
    for rt in report.runtimes:
        entry: dict[str, Any] = {"available": rt.available}
        if rt.version is not None:
            entry["version"] = rt.version
        entry["devices"] = list(rt.devices)
        if rt.reason is not None:
            entry["reason"] = rt.reason
        runtimes[rt.name] = entry
    head = f"# What the inference runtimes said on {report.root!r} when this tree was saved.\n"
    texts[FIXTURE_FILE] = head + _toml(runtimes)
    gpus = nvml_of(report.accelerators)
    if gpus:
        rows = []
        for g in gpus:
            row: dict[str, Any] = {
                "pci_address": g.pci_address,
                "name": g.name,
                "memory_bytes": g.memory_bytes,
                "compute_capability": g.compute_capability,
            }
            if g.minor is not None:
                row["minor"] = g.minor
            rows.append(row)
        head = f"# What NVML said on {report.root!r} when this tree was saved.\n"
        texts[NVML_FIXTURE_FILE] = head + _toml({"gpus": rows})
    written = []
    for name, text in texts.items():
        path = into / name
        if path.exists():
            continue
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise ProbeError(f"{path}: cannot write the tree: {e}") from e
        written.append(path)
    return written


def _toml(data: dict[str, Any]) -> str:
    """TOML text any reader takes back: tomli-w escapes control characters (an exception's
    message can hold newlines and terminal colour codes); a lone surrogate, which TOML
    cannot hold, becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", tomli_w.dumps(data))
