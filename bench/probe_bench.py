"""Hardware probe timing: the file stage on the live host, and live enrichment per source.

    .venv/bin/python bench/probe_bench.py [--runs 200] [--cold 3] [--json]

1. File stage: ``probe("/", live=False)`` repeated ``--runs`` times in this process; the
   budget is 50 ms and the median must be well under it. The baseline measured in the same
   run is one read of /proc/cpuinfo, so the ratio says how many such reads the probe costs.
2. Live enrichment: ``probe("/")`` in ``--cold`` fresh interpreters (a daemon pays the
   imports once, at start-up, so the cold figure is the one that matters), with the
   seconds each source took from ``report.timings``.
Exits 1 when the file-stage median is over budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.hardware import probe  # noqa: E402

BUDGET_S = 0.050
LIVE_SOURCES = ("psutil", "nvml", "onnxruntime", "openvino", "llama_cpp", "live_total")

_COLD = """
import json, time
t0 = time.perf_counter()
from runtime.hardware import probe
r = probe("/")
print(json.dumps({"timings": r.timings, "wall": time.perf_counter() - t0}))
"""


def _timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    probe("/", live=False)  # warm the page cache and Python's imports
    baseline = _timed(lambda: Path("/proc/cpuinfo").read_text(), args.runs)
    files = _timed(lambda: probe("/", live=False), args.runs)
    per_source = probe("/", live=False).timings

    cold = []
    for _ in range(args.cold):
        out = subprocess.run(
            [sys.executable, "-c", _COLD], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout
        cold.append(json.loads(out.strip().splitlines()[-1]))
    live = {s: statistics.median(c["timings"].get(s, 0.0) for c in cold) for s in LIVE_SOURCES}

    result = {
        "file_probe_median_ms": statistics.median(files) * 1e3,
        "file_probe_p95_ms": _p(files, 0.95) * 1e3,
        "budget_ms": BUDGET_S * 1e3,
        "share_of_budget": statistics.median(files) / BUDGET_S,
        "baseline_cpuinfo_read_ms": statistics.median(baseline) * 1e3,
        "ratio_probe_to_cpuinfo_read": statistics.median(files) / statistics.median(baseline),
        "file_sources_ms": {k: v * 1e3 for k, v in per_source.items()},
        "live_cold_median_ms": {k: v * 1e3 for k, v in live.items()},
        "ratio_live_to_files": live["live_total"] / statistics.median(files),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"file probe: median {result['file_probe_median_ms']:.2f} ms, "
            f"p95 {result['file_probe_p95_ms']:.2f} ms "
            f"({result['share_of_budget']:.1%} of the {BUDGET_S * 1e3:.0f} ms budget)"
        )
        print(
            f"baseline: one /proc/cpuinfo read {result['baseline_cpuinfo_read_ms']:.3f} ms; "
            f"probe = {result['ratio_probe_to_cpuinfo_read']:.1f}x that"
        )
        print(
            "file sources (ms): "
            + ", ".join(f"{k} {v:.3f}" for k, v in result["file_sources_ms"].items())
        )
        print(
            f"live enrichment, cold process, median of {args.cold} (ms): "
            + ", ".join(f"{k} {v:.1f}" for k, v in result["live_cold_median_ms"].items())
        )
        print(f"live enrichment / file probe = {result['ratio_live_to_files']:.0f}x")
    return 0 if statistics.median(files) < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
