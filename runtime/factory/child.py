"""A build step that cannot be interrupted in-process (NNCF's accuracy control,
quantize_static's calibration, OpenVINO's conversion, a measuring loop) runs in a child
process, stopped at the build's deadline (issue 24: a build ran 839 s against a 120 s
budget, inside NNCF).

``run_job(name, args, deadline=..., work=...)`` starts ``python -m runtime.factory.worker``
on a job file, in the job's own directory under ``work`` (what a library leaves in its
working directory stays there and goes with the build's staging), and waits until the
deadline. The child runs in its own process group and
session (a Ctrl-C on the terminal reaches the build, which stops the child; the child's
own output goes to a log file, not through the build's live table) and asks the kernel to
kill it should the build die without cleaning up (PR_SET_PDEATHSIG). Outcomes:

- the job's result (a JSON object);
- ``JobFailed``: the job raised (its one-line reason) or the child died (its signal);
- ``JobCut``: the deadline came first; the child's process group is killed, and the
  last checkpoint the job wrote (a search's best copy so far) is handed back;
- KeyboardInterrupt or SystemExit in the build: the child is killed, the exception goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STOP_GRACE_S = 2.0


class JobFailed(Exception):
    """The job raised, or its process died; the message is the reason."""


class JobCut(Exception):
    """The build's deadline stopped the job after ``seconds``; ``checkpoint`` is the last
    progress it recorded (or None)."""

    def __init__(self, name: str, seconds: float, checkpoint: dict[str, Any] | None) -> None:
        super().__init__(f"{name} cut at the time budget after {seconds:.0f} s")
        self.seconds = seconds
        self.checkpoint = checkpoint


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    """Written to a temporary name and renamed: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _env() -> dict[str, str]:
    """The child imports the same ``runtime`` package as the build (a checkout on
    PYTHONPATH, or the installed one)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the directory holding runtime/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group, SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def run_job(name: str, args: dict[str, Any], *, deadline: float, work: Path) -> dict[str, Any]:
    """Run job ``name`` with ``args`` in a child process until ``deadline``
    (time.monotonic(), which the child shares: one clock for the machine)."""
    jobdir = Path(tempfile.mkdtemp(prefix=f"job-{name}-", dir=work))
    job = {
        "job": name,
        "args": args,
        "deadline": deadline,
        "result": str(jobdir / "result.json"),
        "checkpoint": str(jobdir / "checkpoint.json"),
    }
    (jobdir / "job.json").write_text(json.dumps(job))
    log = jobdir / "log.txt"
    t0 = time.monotonic()
    if t0 >= deadline:
        raise JobCut(name, 0.0, None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.factory.worker", str(jobdir / "job.json")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_env(),
            # the job's own directory: onnxruntime's symbolic shape inference leaves
            # sym_shape_infer_temp.onnx and its .data files in the working directory
            cwd=jobdir, start_new_session=True,
        )  # fmt: skip
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise JobCut(name, time.monotonic() - t0, _read_json(jobdir / "checkpoint.json")) from None
    except BaseException:
        _stop(proc)
        raise
    result = _read_json(jobdir / "result.json")
    if result is None:
        how = (
            f"killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exit code {proc.returncode}"
        )
        tail = _tail(log)
        raise JobFailed(f"the {name} worker died ({how})" + (f": {tail}" if tail else ""))
    if "error" in result:
        raise JobFailed(str(result["error"]))
    value = result.get("value")
    return value if isinstance(value, dict) else {}
