"""Save what the probe read on this host as a fixture tree: ``headframe detect --save-tree``.

A support case ("why did this box pick the CPU profile?") needs the files the probe saw,
not a screenshot. ``RecordingHostFS`` reads exactly as ``HostFS`` does and copies every
file it reads, and a placeholder for every name it lists or tests, into a directory. That
directory is then a fake host: ``headframe detect --root DIR`` on any machine reproduces
the file stage of the probe, and ``write_runtimes_file`` adds what the live runtimes said
so that profile matching reproduces too. Only what the probe reads is copied (CPU, memory,
PCI ids, device nodes, thermal zones): no logs, no configuration, no credentials.
"""

from __future__ import annotations

import os
from pathlib import Path

from runtime.errors import ProbeError
from runtime.hardware.hostfs import HostFS
from runtime.hardware.report import HardwareReport
from runtime.hardware.runtimes import FIXTURE_FILE


class RecordingHostFS(HostFS):
    """A HostFS that mirrors every path it touches into ``into``.

    Files read keep their content; names that were only listed, globbed or tested become
    empty files, or directories where the host has a directory. Device nodes become empty
    files, which is all the probe asks of them (that they exist).
    """

    def __init__(self, root: str | Path, into: str | Path) -> None:
        super().__init__(root)
        self.into = Path(into)
        try:
            self.into.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProbeError(f"{self.into}: cannot create the tree directory: {e}") from e
        if any(self.into.iterdir()):
            raise ProbeError(f"{self.into}: not empty; save the tree into a new directory")

    def _mirror(self, host_path: str) -> Path:
        return self.into / host_path.lstrip("/")

    def _placeholder(self, host_path: str) -> None:
        target = self._mirror(host_path)
        if os.path.lexists(target):
            return
        if os.path.isdir(self.path(host_path)):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()

    def read_text(self, host_path: str) -> str | None:
        text = super().read_text(host_path)
        if text is not None:
            target = self._mirror(host_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
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


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_runtimes_file(report: HardwareReport, into: str | Path) -> Path:
    """Write the report's runtimes as the tree's .headframe-runtimes.toml and return its path.

    A tree's own files cannot say which inference runtimes were installed, so the live
    answer is kept beside them in the format ``runtimes_from_fixture`` reads.
    """
    lines = [f"# What the inference runtimes said on {report.root} when this tree was saved."]
    for rt in report.runtimes:
        lines += ["", f"[{rt.name}]", f"available = {'true' if rt.available else 'false'}"]
        if rt.version is not None:
            lines.append(f"version = {_toml_string(rt.version)}")
        devices = ", ".join(_toml_string(d) for d in rt.devices)
        lines.append(f"devices = [{devices}]")
        if rt.reason is not None:
            lines.append(f"reason = {_toml_string(rt.reason)}")
    path = Path(into) / FIXTURE_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
