"""Cold start: `headframe serve` against Seldon MLServer, and CLI start-up against a bare
interpreter (issue 15 items 7 and 8).

    .venv/bin/python bench/cold_start_bench.py [--store DIR] [--rounds 4]
        [--cli-runs 10] [--mlserver /tmp/mlserver-venv/bin/mlserver] [--only serve|cli]

serve: time from process start until ``GET /v2/models/part-id-reader/ready`` answers 200,
polled the same way (every 20 ms) for every server, in alternated rounds (the first server
of a round alternates too, so neither always starts on a box the other just warmed):
- headframe on the built demo store as a site runs it (profile matched, smallest variant);
- headframe on the same store with the generic-x86-64 profile and the fp32 variant pinned:
  the same file on the same runtime (onnxruntime) as MLServer serves;
- MLServer serving the demo's fp32 ONNX file through bench/serving_bench.py's one-file
  MLModel runtime on onnxruntime (PyPI has no mlserver-onnx package). Install it in its own
  venv: python3 -m venv /tmp/mlserver-venv && /tmp/mlserver-venv/bin/pip install
  'mlserver==1.7.1' onnxruntime. Without it those rows say why they are missing.
Ratios are headframe over MLServer, per round and the median of the rounds (target: 0.6 or
less). Idle RSS once ready is printed beside each. headframe keeps its compiled-model cache
between rounds, as a box that restarts does (round 1 fills it). Prints one JSON report.

cli: wall time of `headframe models list`, `headframe config show` and `headframe --help`
against `python -c pass` (the interpreter alone) in alternated runs; the figure that matters
is the time above the bare interpreter (target: list/show/config under 0.5 s in all).

Every figure is printed with the 1-minute load average at the time it was taken; on a busy
box (load above the core count) the ratios mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from serving_bench import APP, VARIANT, free_port, start_mlserver, stop  # noqa: E402

POLL_S = 0.02
Starter = Callable[[Path], tuple[subprocess.Popen[bytes], str]]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _headframe_config(work: Path, store: Path, port: int, *, same_as_mlserver: bool) -> Path:
    cfg = work / f"headframe-{port}.toml"
    # generic-x86-64 runs ONNX on onnxruntime first; the avx2/avx512 profiles on OpenVINO.
    profile = 'profile = "generic-x86-64"\n' if same_as_mlserver else ""
    apps = f'[[applications]]\nname = "{APP}"\nvariant = "{VARIANT}"\n' if same_as_mlserver else ""
    cfg.write_text(
        f'demo = false\nlog_level = "WARNING"\n{profile}'
        f'[paths]\nstore_dir = "{store}"\nstate_dir = "{work / "state"}"\n'
        f'cache_dir = "{work / "cache"}"\nprofiles_dir = "{REPO / "device_profiles"}"\n'
        f"store_watch_s = 0\n[api]\nport = {port}\n{apps}"
    )
    return cfg


def _headframe(store: Path, *, same_as_mlserver: bool) -> Starter:
    def start(work: Path) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        cfg = _headframe_config(work, store, port, same_as_mlserver=same_as_mlserver)
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--config", str(cfg)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        )  # fmt: skip
        return proc, f"http://127.0.0.1:{port}"

    return start


def _mlserver(store: Path, binary: str) -> Starter:
    model = store / APP / "1.0.0" / "variants" / VARIANT / "model.onnx"
    return lambda work: start_mlserver(work, model, binary)


def _time_to_ready(start: Starter, work: Path, timeout: float = 120) -> dict[str, Any]:
    import httpx
    import psutil

    load = _load()
    t0 = time.perf_counter()
    proc, url = start(work)
    try:
        with httpx.Client(timeout=1) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"exited with {proc.returncode} before it was ready")
                try:
                    if client.get(f"{url}/v2/models/{APP}/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"not ready within {timeout} s")
                time.sleep(POLL_S)
            ready_s = time.perf_counter() - t0
            served = ""
            meta = client.get(f"{url}/v2/models/{APP}").json()
            params = meta.get("parameters") or {}
            if "variant" in params:
                served = "{variant} on {backend}/{device}".format(**params)
        time.sleep(0.5)
        rss = sum(
            p.memory_info().rss
            for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
        )
        return {"ready_s": round(ready_s, 3), "rss_mib": round(rss / 2**20, 1),
                "load_1m": load, "served": served}  # fmt: skip
    finally:
        stop(proc)


def serve_bench(args: argparse.Namespace, store: Path, work: Path) -> dict[str, Any]:
    servers: dict[str, Starter] = {
        "headframe (matched profile)": _headframe(store, same_as_mlserver=False),
        "headframe (onnxruntime fp32)": _headframe(store, same_as_mlserver=True),
    }
    notes: dict[str, str] = {}
    if args.mlserver and Path(args.mlserver).exists():
        servers["MLServer"] = _mlserver(store, args.mlserver)
    else:
        notes["MLServer"] = f"not measured: {args.mlserver} not found (see the docstring)"
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    names = list(servers)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            try:
                run = _time_to_ready(servers[name], work)
            except Exception as e:
                notes[name] = f"failed: {e}"
                continue
            runs[name].append(run)
            print(f"round {r + 1} {name}: ready in {run['ready_s']:.2f} s, "
                  f"RSS {run['rss_mib']} MiB, load {run['load_1m']}", file=sys.stderr)  # fmt: skip
    table: dict[str, Any] = {}
    for name, rs in runs.items():
        if rs:
            table[name] = {
                "ready_s_median": round(statistics.median(x["ready_s"] for x in rs), 3),
                "ready_s_all": [x["ready_s"] for x in rs],
                "rss_mib_median": round(statistics.median(x["rss_mib"] for x in rs), 1),
                "load_1m_all": [x["load_1m"] for x in rs],
                "served": rs[-1]["served"] or None,
            }
    ratios: dict[str, Any] = {}
    base = runs.get("MLServer") or []
    for name in names:
        if name == "MLServer" or not runs[name] or not base:
            continue
        per_round = [
            round(h["ready_s"] / m["ready_s"], 2) for h, m in zip(runs[name], base, strict=False)
        ]
        ratios[f"{name} / MLServer"] = {
            "median": round(table[name]["ready_s_median"] / table["MLServer"]["ready_s_median"], 2),
            "per_round": per_round,
        }
    return {"servers": table, "ratios": ratios, "notes": notes}


def _headframe_cmd() -> list[str]:
    script = Path(sys.executable).parent / "headframe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "runtime"]


def cli_bench(args: argparse.Namespace, store: Path, work: Path) -> dict[str, Any]:
    home = work / "cli-home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "XDG_CONFIG_HOME": str(home / "config")}  # fmt: skip
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "headframe models list": [*_headframe_cmd(), "models", "list", "--store", str(store)],
        "headframe config show": [*_headframe_cmd(), "config", "show"],
        "headframe --help": [*_headframe_cmd(), "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    loads: list[float] = []
    for r in range(args.cli_runs):
        order = list(commands)
        order = order[r % len(order) :] + order[: r % len(order)]
        for name in order:
            loads.append(_load())
            t0 = time.perf_counter()
            subprocess.run(commands[name], env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    bare = statistics.median(times["python -c pass"])
    table = {
        name: {
            "wall_s_median": round(statistics.median(ts), 3),
            "above_bare_s": round(statistics.median(ts) - bare, 3),
            "over_bare": round(statistics.median(ts) / bare, 2),
        }
        for name, ts in times.items()
    }
    return {"commands": table, "runs": args.cli_runs, "load_1m_min_max": [min(loads), max(loads)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a built demo store (default: build one)")
    parser.add_argument("--rounds", type=int, default=4, help="serve rounds (each server once)")
    parser.add_argument("--cli-runs", type=int, default=10, help="runs of each CLI command")
    parser.add_argument("--mlserver", default="/tmp/mlserver-venv/bin/mlserver")
    parser.add_argument("--only", choices=["serve", "cli"], action="append")
    args = parser.parse_args()
    only = args.only or ["serve", "cli"]
    report: dict[str, Any] = {"cores": os.cpu_count(), "load_at_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="cold-start-bench-") as tmp:
        work = Path(tmp)
        store = args.store
        if store is None:
            sys.path.insert(0, str(REPO))
            from runtime.demo import build_demo_catalog

            store = work / "demo-store"
            build_demo_catalog(store)
        if "serve" in only:
            report["serve"] = serve_bench(args, store, work)
        if "cli" in only:
            report["cli"] = cli_bench(args, store, work)
        shutil.rmtree(work / "state", ignore_errors=True)
    report["load_at_end"] = list(os.getloadavg())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
