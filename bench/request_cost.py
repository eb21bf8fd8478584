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

    .venv/bin/python bench/request_cost.py [--store DIR] [--requests 300]

Needs valgrind (apt-get install valgrind). Start-up under valgrind takes a minute or two.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def measure(name: str, cmd: list[str], port: int, ready: str, body: bytes, n: int,
            work: Path) -> dict[str, float]:  # fmt: skip
    out = work / f"callgrind.{name.replace(' ', '_').replace(',', '')}"
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    proc = subprocess.Popen([*vg, *cmd], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}{ready}", proc, 900)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        path = f"/v2/models/{APP}/infer"
        for _ in range(20):  # warm-up: first-call paths are not what a request costs
            _request(conn, path, body)
        ctl = ["callgrind_control", str(proc.pid)]
        subprocess.run([*ctl[:1], "-i", "on", *ctl[1:]], check=True, capture_output=True)
        t = time.perf_counter()
        for _ in range(n):
            _request(conn, path, body)
        wall = time.perf_counter() - t
        subprocess.run([*ctl[:1], "-i", "off", *ctl[1:]], check=True, capture_output=True)
        conn.close()
    finally:
        stop(proc, 300)  # valgrind writes its counts on the way out
    total = 0
    for f in work.glob(out.name + "*"):  # one file per process (and thread, if split)
        # "totals:" holds what was counted while instrumentation was on ("summary:" is 0)
        m = re.search(r"^totals:\s+(\d+)", f.read_text(errors="replace"), re.M)
        total += int(m.group(1)) if m else 0
    return {"instructions_per_request": round(total / n), "valgrind_wall_ms": wall / n * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a built demo store (default: build one)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", action="append", help="a server name (repeatable)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
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
        report: dict[str, dict[str, float]] = {}
        os.chdir(REPO)
        for name, (cmd, ready) in servers.items():
            if args.only and name not in args.only:
                continue
            report[name] = measure(name, cmd, ports[name], ready, body, args.requests, work)
            report[name]["load_avg_1m"] = round(os.getloadavg()[0], 2)  # shown, not needed
            print(name, report[name], file=sys.stderr)
        base = report.get("bare, threaded", {}).get("instructions_per_request")
        for row_ in report.values():
            row_["x_bare_threaded"] = (
                round(row_["instructions_per_request"] / base, 2) if base else None
            )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
