"""The daemon's one LoadShed (``Daemon.shed``, the governor's handle): started from another
thread, the daemon's own HTTP app answers 429 and /metrics says so; stopped, it serves."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.config import Settings
from runtime.daemon import Daemon
from tests.support.serving_models import kserve_body, write_linear_package

APP = "part-id-reader"


def _samples(text: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("headframe_shedding", "headframe_shed_requests_total"):
                out[s.name] = s.value
    return out


@pytest.mark.slow
def test_the_daemon_hands_one_load_shed_to_its_http_app(tmp_path: Path) -> None:
    write_linear_package(tmp_path / "store")
    settings = Settings(
        demo=False,
        paths={"state_dir": tmp_path / "state", "store_dir": tmp_path / "store",
               "cache_dir": tmp_path / "cache"},
        api={"port": 0},
        applications=[{"name": APP}],
    )  # fmt: skip

    async def main() -> list[int]:
        daemon = Daemon(settings, env={})
        run = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 60
        while not (daemon.service and daemon.service.is_ready() and daemon.url):
            assert time.monotonic() < deadline, "the daemon did not get ready"
            await asyncio.sleep(0.05)
        statuses = []
        try:
            async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as http:
                infer = f"/v2/models/{APP}/infer"
                statuses.append((await http.post(infer, content=kserve_body())).status_code)
                # The governor's sampler thread decides; the loop keeps serving meanwhile.
                await asyncio.to_thread(daemon.shed.start, "memory hard", 3.0)
                r = await http.post(infer, content=kserve_body())
                statuses.append(r.status_code)
                assert r.headers["retry-after"] == "3"
                assert _samples((await http.get("/metrics")).text) == {
                    "headframe_shedding": 1.0,
                    "headframe_shed_requests_total": 1.0,
                }
                statuses.append((await http.get("/v2/health/ready")).status_code)
                await asyncio.to_thread(daemon.shed.stop)
                statuses.append((await http.post(infer, content=kserve_body())).status_code)
        finally:
            daemon.request_stop()
            await run
        return statuses

    assert asyncio.run(main()) == [200, 429, 200, 200]
