"""CPU cost of one KServe v2 JSON request, in instructions, headframe against the bare apps.

Load-independent, so it runs on a busy box: each server runs under valgrind's callgrind
with instrumentation off; after start-up and a warm-up the instrumentation is switched
on (callgrind_control) for ``--requests`` sequential requests on one keep-alive
connection, then off again; the instructions counted (every thread: the event loop, the
model's worker, onnxruntime's pool) divided by the requests is the cost per request.
headframe is ``headframe serve`` on the demo store (profile generic-x86-64, variant fp32,
the same .onnx file the bare apps load, bench/bare_kserve_app.py). The client is this
process, outside valgrind. What it cannot see: time spent waiting (thread wake-ups,
context switches); the serving bench measures that, on an idle box.

    .venv/bin/python bench/request_cost.py [--store DIR] [--requests 300] [--python]

Needs valgrind (apt-get install valgrind). Start-up under valgrind takes a minute or two.
``--python`` counts instead the Python calls per request on the event loop's thread (cProfile
switched on and off by signals around the same window) and lists where the time went.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_bench import (
    APP,
    BARE_APP,
    REPO,
    demo_store,
    free_port,
    headframe_config,
    model_and_body,
    stop,
    wait_ready,
)


def _request(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: HTTP {r.status}: {data[:200]!r}")
    return data


# Runs a server with cProfile switched on and off by SIGUSR1/SIGUSR2 (the event loop's
# thread: where headframe's own request code runs) and dumped to argv[1] on SIGUSR2.
PROFILED = """
import cProfile, runpy, signal, sys
prof, out = cProfile.Profile(), sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda *a: prof.enable())
signal.signal(signal.SIGUSR2, lambda *a: (prof.disable(), prof.dump_stats(out)))
sys.argv = sys.argv[1:]
if sys.argv[0] == "runtime":  # python -m runtime serve ...
    runpy.run_module("runtime", run_name="__main__", alter_sys=True)
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _window(cmd: list[str], port: int, ready: str, body: bytes, n: int,
            on: list[str] | signal.Signals, off: list[str] | signal.Signals) -> float:  # fmt: skip
    """Start ``cmd``, warm up, switch measuring on, ``n`` requests, off, stop; the seconds
    the ``n`` requests took. ``on``/``off``: a command (its pid appended) or a signal."""
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def switch(how: list[str] | signal.Signals) -> None:
        if isinstance(how, signal.Signals):
            os.kill(proc.pid, how)
        else:
            subprocess.run([*how, str(proc.pid)], check=True, capture_output=True)

    try:
        wait_ready(f"http://127.0.0.1:{port}{ready}", proc, 900)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        path = f"/v2/models/{APP}/infer"
        for _ in range(20):  # warm-up: first-call paths are not what a request costs
            _request(conn, path, body)
        switch(on)
        _request(conn, path, body)  # a signal is handled when the loop next runs Python
        t = time.perf_counter()
        for _ in range(n):
            _request(conn, path, body)
        wall = time.perf_counter() - t
        switch(off)
        _request(conn, path, body)
        conn.close()
    finally:
        stop(proc, 300)  # valgrind writes its counts on the way out
    return wall


def instructions(name: str, cmd: list[str], port: int, ready: str, body: bytes, n: int,
                 work: Path) -> dict[str, float]:  # fmt: skip
    out = work / f"callgrind.{name.replace(' ', '_').replace(',', '')}"
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    ctl = ["callgrind_control", "-i"]
    wall = _window([*vg, *cmd], port, ready, body, n, [*ctl, "on"], [*ctl, "off"])
    # "totals:" holds what was counted while instrumentation was on ("summary:" is 0)
    m = re.search(r"^totals:\s+(\d+)", out.read_text(errors="replace"), re.M)
    total = int(m.group(1)) if m else 0
    return {"instructions_per_request": round(total / n), "valgrind_wall_ms": wall / n * 1000}


def python_calls(name: str, cmd: list[str], port: int, ready: str, body: bytes, n: int,
                 work: Path, top: int = 12) -> dict[str, Any]:  # fmt: skip
    import pstats

    out = work / f"profile.{name.replace(' ', '_').replace(',', '')}"
    profiled = [cmd[0], "-c", PROFILED, str(out), *(cmd[2:] if cmd[1] == "-m" else cmd[1:])]
    _window(profiled, port, ready, body, n + 1, signal.SIGUSR1, signal.SIGUSR2)
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])
    return {
        "python_calls_per_request": round(sum(v[1] for v in stats.values()) / (n + 1), 1),
        "top_self_time": [
            f"{Path(f).name}:{line} {fn} x{v[1] / (n + 1):.1f}" for (f, line, fn), v in rows[:top]
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a built demo store (default: build one)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", action="append", help="a server name (repeatable)")
    parser.add_argument(
        "--python", action="store_true",
        help="Python calls per request on the event loop (cProfile) instead of instructions",
    )  # fmt: skip
    args = parser.parse_args()
    if not args.python and shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="request-cost-") as tmp:
        work = Path(tmp)
        store = demo_store(args.store, work)
        model, body = model_and_body(store)
        ports = {name: free_port() for name in ("headframe", "bare, threaded", "bare, inline")}
        cfg = headframe_config(work, store, ports["headframe"])
        servers = {
            "headframe": ([sys.executable, "-m", "runtime", "serve", "--config", str(cfg)],
                          "/v2/health/ready"),
            "bare, threaded": ([sys.executable, str(BARE_APP), str(model),
                                str(ports["bare, threaded"]), "threaded"], "/"),
            "bare, inline": ([sys.executable, str(BARE_APP), str(model),
                              str(ports["bare, inline"]), "inline"], "/"),
        }  # fmt: skip
        report: dict[str, dict[str, Any]] = {}
        measure = python_calls if args.python else instructions
        os.chdir(REPO)
        for name, (cmd, ready) in servers.items():
            if args.only and name not in args.only:
                continue
            report[name] = measure(name, cmd, ports[name], ready, body, args.requests, work)
            report[name]["load_avg_1m"] = round(os.getloadavg()[0], 2)  # shown, not needed
            print(name, report[name], file=sys.stderr)
        key = "python_calls_per_request" if args.python else "instructions_per_request"
        base = report.get("bare, threaded", {}).get(key)
        for row_ in report.values():
            row_["x_bare_threaded"] = round(row_[key] / base, 2) if base else None
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
