"""Poll /v2/health/live on a thread while a test sends something hostile: the liveness
route does nothing but answer, so its latency is how long the server's event loop was
held. ``with HealthProbe(url) as probe: ...`` then ``probe.worst_s``."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import httpx


class HealthProbe:
    """GET ``{url}/v2/health/live`` every ``period_s``, one request at a time, each on a
    connection kept open (so the figure is the server's answer, not a TCP handshake)."""

    def __init__(self, url: str, period_s: float = 0.02) -> None:
        self.url = url
        self.period_s = period_s
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = http.get("/v2/health/live")
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))
                self.latencies.append(time.perf_counter() - t0)
                self._stop.wait(self.period_s)

    @property
    def worst_s(self) -> float:
        return max(self.latencies, default=0.0)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        time.sleep(self.period_s * 5)  # a few answers before the test starts
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(70)
