"""The cgroup v2 signal on a real cgroup: a child cgroup with memory.max, a process in it
that fills part of it, and the governor's reader run inside it seeing the headroom shrink.
Skipped, with the reason, where the machine does not delegate a cgroup v2 memory
controller to this user (a container, a cgroup v1 or hybrid host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CGROUP = Path("/sys/fs/cgroup")
LIMIT = 256 * 1024 * 1024
READ_INSIDE = """
import json, os, sys
try:
    with open(sys.argv[1] + "/cgroup.procs", "w") as procs:
        procs.write(str(os.getpid()))
except OSError as e:  # not delegated (EACCES, EBUSY, EOPNOTSUPP...): the test skips
    print(f"cannot move into {sys.argv[1]}: {e}", file=sys.stderr)
    sys.exit(77)
from runtime.governor.signals import SignalReader
reader = SignalReader("/")
before = [r.value for r in reader.read_host() if r.signal == "cgroup_headroom_pct"]
ballast = bytearray(160 * 1024 * 1024)  # touched: counted in memory.current
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
after = [r.value for r in reader.read_host() if r.signal == "cgroup_headroom_pct"]
print(json.dumps({"before": before, "after": after}))
"""


def _child_cgroup(tmp_name: str) -> Path:
    if not (CGROUP / "cgroup.controllers").exists():
        pytest.skip("no cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or hybrid host)")
    own = next((ln[3:] for ln in Path("/proc/self/cgroup").read_text().splitlines()
                if ln.startswith("0::")), None)  # fmt: skip
    if own is None:
        pytest.skip("this process is in no cgroup v2 group")
    parent = CGROUP / own.strip().lstrip("/")
    child = parent / tmp_name
    try:
        child.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a cgroup under {parent} ({e.strerror}): not delegated")
    if "memory" not in (child / "cgroup.controllers").read_text().split():
        child.rmdir()
        pytest.skip(f"the memory controller is not delegated to {parent}")
    try:
        (child / "memory.max").write_text(str(LIMIT))
    except OSError as e:
        child.rmdir()
        pytest.skip(f"cannot set memory.max in {child} ({e.strerror})")
    return child


def test_the_reader_sees_its_own_cgroup_fill(tmp_path: Path) -> None:
    child = _child_cgroup(f"headframe-governor-test-{os.getpid()}")
    try:
        out = subprocess.run([sys.executable, "-c", READ_INSIDE, str(child)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        if out.returncode == 77:
            pytest.skip(f"{out.stderr.strip()}: not delegated to this user")
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
    finally:
        child.rmdir()
    assert seen["before"] and seen["after"], seen
    # 160 MiB of a 256 MiB limit: the headroom fell below about 40%.
    assert seen["after"][0] < 40 < seen["before"][0]
