"""Staging directories that name their maker, and the sweep that removes those whose maker
is gone.

Every tool that writes into a store (``models add``, ``models build``, the demo, a
knowledge build) assembles its work in a ``.staging-*`` directory beside the target and
moves it into place with one rename; on an error or Ctrl-C it removes the directory
itself. A process killed outright (SIGKILL, the OOM killer, a power cut) cannot, so its
directory stays behind, holding up to a whole package's bytes. The next tool that stages
there, and the daemon at start, sweep such leftovers.

The rule is never to remove a directory a live process is still writing. So each
directory's name records its owner: ``.staging-[KIND-]p<pid>-t<start>-m<machine>-b<boot>-``
and mkdtemp's random suffix, where ``start`` is the process's start time in clock ticks
since boot (``/proc/<pid>/stat``: a reused pid has another), ``machine`` hashes the host
name and the pid namespace (a pid means nothing on another host sharing the store, or
in another container), and ``boot`` hashes the kernel's boot id. A directory is stale
when it was made on this machine and namespace and either the machine has rebooted since
or no process with that pid and start time exists. Anything else is kept: a directory
from another host or container, and one whose name records no owner (made by an older
version, or by hand), which is logged and left for a person to remove.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = ".staging-"
_OWNED = re.compile(
    r"^\.staging-(?:[a-z]+-)?p(?P<pid>\d{1,10})-t(?P<start>\d{1,20})"
    r"-m(?P<machine>[0-9a-f]{8})-b(?P<boot>[0-9a-f]{8})-"
)


@dataclass(frozen=True)
class Owner:
    """Who made a staging directory (see the module docstring)."""

    pid: int
    start: int  # 0: not known (no /proc)
    machine: str
    boot: str

    def tag(self) -> str:
        return f"p{self.pid}-t{self.start}-m{self.machine}-b{self.boot}"


def _hash8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None when no such
    process exists, 0 when it cannot be told (no /proc)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        if not Path("/proc/self/stat").exists():  # no /proc here: existence only
            return 0 if _exists(pid) else None
        return None
    # The command name (field 2) may hold spaces and parentheses: count after the last ")".
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return 0


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@cache
def _machine_and_boot() -> tuple[str, str]:
    """Constant for the life of a process (a process never changes namespace here)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    machine = _hash8(f"{socket.gethostname()}\0{namespace}")
    return machine, _hash8(_read("/proc/sys/kernel/random/boot_id"))


def this_process() -> Owner:
    machine, boot = _machine_and_boot()
    pid = os.getpid()
    return Owner(pid, start_ticks(pid) or 0, machine, boot)


def owner_of(name: str) -> Owner | None:
    """The owner a staging directory's name records; None when it records none."""
    m = _OWNED.match(name)
    if m is None:
        return None
    return Owner(int(m["pid"]), int(m["start"]), m["machine"], m["boot"])


def make_staging_dir(parent: Path, kind: str = "") -> Path:
    """A new, empty ``.staging-[KIND-]<owner>-XXXXXXXX`` directory in ``parent`` (which is
    created), mode 0700 as mkdtemp makes it. ``kind``: lower-case letters ("build")."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{PREFIX}{kind + '-' if kind else ''}{this_process().tag()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def is_stale(name: str) -> bool | None:
    """True: made on this machine by a process that is gone; False: its maker may still be
    writing it (or it was made on another host or in another container); None: the name
    records no owner."""
    owner = owner_of(name)
    return None if owner is None else _gone(owner)


def _gone(owner: Owner) -> bool:
    here = this_process()
    if owner.machine != here.machine:
        return False  # another host or pid namespace: its pids are not ours to look up
    if owner.boot != here.boot:
        return True  # made before this machine last started: nobody is writing it now
    started = start_ticks(owner.pid)
    if started is None:
        return True
    return bool(owner.start and started and started != owner.start)  # a reused pid


def sweep_staging(parent: Path) -> list[Path]:
    """Remove the stale staging directories directly in ``parent``; returns those removed.
    Never raises: a directory that cannot be read or removed is logged and left."""
    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = sorted(p for p in parent.iterdir() if p.name.startswith(PREFIX))
    except OSError:
        return removed  # no such directory yet, or not ours to read
    unowned = []
    for path in entries:
        if path.is_symlink() or not path.is_dir():
            continue
        owner = owner_of(path.name)
        if owner is None:
            unowned.append(path.name)
            continue
        if not _gone(owner):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            log.warning("%s: a stale staging directory that cannot be removed", path)
        else:
            log.info("removed %s: left by process %d, which is gone", path, owner.pid)
            removed.append(path)
    if unowned:
        log.info(
            "%s: left alone, no owner recorded (an older headframe made them; remove them "
            "by hand when nothing writes there): %s",
            parent,
            ", ".join(unowned),
        )
    return removed
