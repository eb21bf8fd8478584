"""Fleet downloads over a bad link, as ratios against a clean link measured in the same run.

A loopback static server (tests.support.static_server) serves one random file; the
downloader fetches it (1) over a clean link (the baseline), (2) over a link that fails
every second request with 503 and cuts every transfer after ``--cut`` bytes, and (3) with
a bandwidth cap. Prints bytes on the wire / file size, wall time / baseline, and the
achieved rate / cap.

    .venv/bin/python bench/fleet_bench.py [--size BYTES] [--cut BYTES] [--cap BYTES_PER_S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tuf.api.metadata import TargetFile

from runtime.fleet.download import Downloader
from tests.support.static_server import Faults, StaticServer


def fetch(
    root: Path, target: TargetFile, faults: Faults, cap: int | None
) -> tuple[float, int, int]:
    with StaticServer(root, faults) as srv, tempfile.TemporaryDirectory() as tmp:
        d = Downloader(bandwidth_limit_bytes_s=cap, backoff_base_s=0.05, backoff_cap_s=0.5,
                       max_failures=20)  # fmt: skip
        t0 = time.perf_counter()
        d.fetch(f"{srv.url}/blob.bin", target, Path(tmp) / "blob.partial")
        elapsed = time.perf_counter() - t0
        d.close()
        return elapsed, srv.body_bytes("blob.bin"), len(srv.log)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32 * 1024 * 1024)
    ap.add_argument("--cut", type=int, default=1024 * 1024)
    ap.add_argument("--cap", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "blob.bin").write_bytes(os.urandom(args.size))
        target = TargetFile.from_file("blob.bin", str(root / "blob.bin"), ["sha256"])
        clean, flaky = [], []
        for _ in range(args.rounds):  # interleaved, so load from elsewhere hits both alike
            clean.append(fetch(root, target, Faults(), None))
            flaky.append(fetch(root, target, Faults(fail_every=2, cut_after=args.cut), None))
        capped = fetch(root, target, Faults(), args.cap)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    base_t = med([c[0] for c in clean])
    flaky_t = med([f[0] for f in flaky])
    flaky_bytes = max(f[1] for f in flaky)
    print(f"file {args.size} bytes; clean link: {base_t:.2f} s, {clean[0][2]} request(s)")
    print(
        f"flaky link (503 every 2nd request, cut every {args.cut} bytes): "
        f"{flaky[0][2]} requests, bytes on the wire / file = {flaky_bytes / args.size:.4f}, "
        f"time x clean = {flaky_t / base_t:.2f}"
    )
    rate = args.size / capped[0]
    print(f"cap {args.cap} B/s: achieved {rate:.0f} B/s = {rate / args.cap:.3f} x cap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
