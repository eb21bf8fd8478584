"""The governor's cost and reaction, as ratios against baselines measured in the same run.

1. CPU per sample: thread CPU time of ``--samples`` reads of every host signal on THIS box
   (``SignalReader("/").read_host()``: meminfo, cgroup, PSI, thermal zones with their trip
   points, NVML on a GPU box), against the baseline of reading /proc/meminfo alone the same
   number of times; and as a share of one core at the default period (target: under 1%).
2. Reaction: a real daemon on the demo store, its governor reading a fixture tree; soft
   memory pressure is written and the time until the lighter variant serves is measured,
   against the configured sustain time plus the swap time the governor measured itself
   (target: ratio about 1, i.e. within sustain + one swap plus one sampling period).

    .venv/bin/python bench/governor_bench.py [--samples N] [--rounds N] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from runtime.config.governor import GovernorSettings
from runtime.governor.signals import SignalReader
from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.pressure_host import PressureHost

APP = "part-id-reader"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_per_sample(samples: int) -> None:
    reader = SignalReader("/")
    reader.read_host()  # first read: imports, NVML init
    t0 = time.thread_time()
    for _ in range(samples):
        reader.read_host()
    full = (time.thread_time() - t0) / samples
    t0 = time.thread_time()
    for _ in range(samples):
        Path("/proc/meminfo").read_text()
    base = (time.thread_time() - t0) / samples
    period = GovernorSettings().period_s
    signals = sorted({r.signal for r in reader.read_host()})
    print(f"signals read here: {', '.join(signals) or 'none'}")
    print(f"cpu per sample: {full * 1e6:.0f} us = {full / base:.1f}x reading /proc/meminfo "
          f"({base * 1e6:.0f} us); {100 * full / period:.4f}% of one core at the default "
          f"period {period:g} s (target < 1%)  [{load()}]")  # fmt: skip
    reader.close()


def serving(url: str) -> str:
    apps = httpx.get(f"{url}/status", timeout=10).json()["applications"]
    return next((a["variant"] for a in apps if a["app"] == APP and "variant" in a), "")


def reaction(store: Path, rounds: int, sustain_s: float, period_s: float) -> None:
    ratios = []
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            host = PressureHost(root / "host")
            port = free_port()
            extra = (
                f'[[applications]]\nname = "{APP}"\naccuracy_floor_bp = 9700\n'
                f'objective = "smallest"\n[governor]\nhost_root = "{host.root}"\n'
                f"period_s = {period_s}\nsustain_s = {sustain_s}\nhold_s = 3600\n"
            )
            cfg = daemon_proc.write_config(root, store, port, extra)
            proc = daemon_proc.start(cfg)
            url = f"http://127.0.0.1:{port}"
            try:
                daemon_proc.wait_ready(url, proc)
                first = serving(url)
                t0 = time.monotonic()
                host.memory(12.0)
                while serving(url) == first:
                    if time.monotonic() - t0 > 120:
                        raise SystemExit("no step down within 120 s (no lighter variant here?)")
                    time.sleep(0.01)
                took = time.monotonic() - t0
                last = httpx.get(f"{url}/status").json()["governor"]["last_action"]
            finally:
                daemon_proc.stop(proc)
        expected = sustain_s + last["swap_s"]
        ratios.append(took / expected)
        print(f"round {i + 1}: {first} -> {last['to']} serving after {took:.3f} s; sustain "
              f"{sustain_s:g} s + swap {last['swap_s']:.3f} s = {expected:.3f} s; ratio "
              f"{took / expected:.2f} (period {period_s:g} s)  [{load()}]")  # fmt: skip
    print(f"reaction / (sustain + one swap): median {statistics.median(ratios):.2f}  [{load()}]")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sustain", type=float, default=2.0)
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--store", type=Path, help="a demo store already built (else built now)")
    args = ap.parse_args()
    cpu_per_sample(args.samples)
    if args.rounds <= 0:
        return 0
    if args.store is not None:
        reaction(args.store, args.rounds, args.sustain, args.period)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from "
                        "runtime.demo import build_demo_catalog; build_demo_catalog(Path("
                        "sys.argv[1]))", str(store)], check=True)  # fmt: skip
        reaction(store, args.rounds, args.sustain, args.period)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
