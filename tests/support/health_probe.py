"""Poll /v2/health/live while a test sends something hostile: the liveness route does
nothing but answer, so its latency is how long the server's event loop was held.
``with HealthProbe(url) as probe: ...`` then ``probe.worst_s``.

The polling runs in a child process of its own: a thread in the test process would share
the GIL with the threads sending the hostile requests, and measure them too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from types import TracebackType

_CHILD = r"""
import json, sys, threading, time
import httpx
url, period = sys.argv[1], float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies, failures = [], []
with httpx.Client(base_url=url, timeout=60) as http:
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            r = http.get("/v2/health/live")
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
        except httpx.HTTPError as e:
            failures.append(repr(e))
        latencies.append(time.perf_counter() - t0)
        stop.wait(period)
print(json.dumps({"latencies": latencies, "failures": failures}))
"""


class HealthProbe:
    """GET ``{url}/v2/health/live`` every ``period_s``, one request at a time, on one
    kept-open connection (so the figure is the server's answer, not a TCP handshake)."""

    def __init__(self, url: str, period_s: float = 0.02) -> None:
        self.url = url
        self.period_s = period_s
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._proc: subprocess.Popen[str] | None = None

    @property
    def worst_s(self) -> float:
        return max(self.latencies, default=0.0)

    def __enter__(self) -> HealthProbe:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, self.url, str(self.period_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)  # started, and a few answers in before the test begins
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._proc is not None
        out, _ = self._proc.communicate(input="", timeout=120)
        doc = json.loads(out or '{"latencies": [], "failures": ["the probe printed nothing"]}')
        self.latencies, self.failures = doc["latencies"], doc["failures"]
