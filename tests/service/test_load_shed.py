"""Load shedding over HTTP on a real loopback server: while the box sheds, a new KServe
infer (both entry points) gets 429 with Retry-After and a body naming the reason; health,
readiness, /status and /metrics answer as ever; a request in flight finishes; after
``stop`` the same request is served again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from runtime.api import kserve
from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.catalog import Store
from runtime.config import Settings
from runtime.service import InferenceService
from runtime.service.load_shed import LoadShed, ShedState
from tests.support.http_server import ServerHandle, running_server
from tests.support.loaders import slow_loader
from tests.support.serving_models import kserve_body

APP = "part-id-reader"
OTHER = "echo"


@contextlib.contextmanager
def _serving(
    store: Path, loader: Any, shed: LoadShed, *, fast_path: bool = True
) -> Iterator[ServerHandle]:
    context = ServerContext()
    context.add_metrics("load_shed", shed.metric_families)  # as the daemon registers it

    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader, workers=2)
        await service.add(Store(store).load(APP))
        await service.add(Store(store).load(OTHER))
        if fast_path:
            app = create_app(service, settings=Settings(demo=False), context=context, shed=shed)
            return app, service
        routes = FastAPI()  # the documented KServe routes alone, no fast path in front
        routes.include_router(kserve.router(service, shed))
        return routes, service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as handle:
        yield handle


def _shed_count(http: httpx.Client) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "headframe_shed_requests_total":
                out[(sample.labels["app"], sample.labels["protocol"])] = sample.value
            if sample.name == "headframe_shedding":
                out[("shedding", "")] = sample.value
    return out


def test_load_shed_state_listeners_and_bad_arguments() -> None:
    shed = LoadShed()
    seen: list[tuple[ShedState | None, str]] = []
    shed.add_listener(lambda s: seen.append((s, threading.current_thread().name)))
    assert shed.active is None and not shed.blocks(APP)
    with pytest.raises(ValueError, match="retry_after_s"):
        shed.start("memory", 0)
    with pytest.raises(ValueError, match="reason"):
        shed.start("", 1)

    # The governor calls from its own thread: listeners run there.
    t = threading.Thread(
        target=shed.start, args=("memory hard", 2.5, frozenset({APP})), name="governor"
    )
    t.start()
    t.join()
    state = shed.active
    assert state is not None and state.reason == "memory hard" and state.apps == {APP}
    assert shed.blocks(APP) and not shed.blocks(OTHER)
    shed.start("memory hard", 2.5, frozenset({APP}))  # the same again: no new event
    shed.stop()
    shed.stop()  # already stopped: no event
    assert [(s is not None, name) for s, name in seen] == [
        (True, "governor"),
        (False, "MainThread"),
    ]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "FastAPI routes"])
def test_kserve_infer_is_shed_with_429_and_served_again_after_stop(
    store: Path, loader: Any, fast_path: bool
) -> None:
    shed = LoadShed()
    with (
        _serving(store, loader, shed, fast_path=fast_path) as h,
        httpx.Client(base_url=h.url) as http,
    ):
        path = f"/v2/models/{APP}/infer"
        assert http.post(path, content=kserve_body()).status_code == 200

        shed.start("memory 97% used, no smaller variant", 2.5)
        r = http.post(path, content=kserve_body())
        assert r.status_code == 429
        assert r.headers["retry-after"] == "3"  # whole seconds, rounded up
        assert "memory 97% used, no smaller variant" in r.json()["error"]
        versioned = http.post(f"/v2/models/{APP}/versions/1.0.0/infer", content=kserve_body())
        assert versioned.status_code == 429

        if fast_path:  # the full app: health, readiness, status, metrics are never shed
            assert http.get("/v2/health/live").status_code == 200
            ready = http.get("/v2/health/ready")
            assert ready.status_code == 200 and ready.json() == {"ready": True}
            assert http.get(f"/v2/models/{APP}/ready").status_code == 200
            assert http.get("/status").status_code == 200
            counts = _shed_count(http)
            assert counts[(APP, "kserve")] == 2
            assert counts[("shedding", "")] == 1

        shed.stop()
        r = http.post(path, content=kserve_body())
        assert r.status_code == 200, r.text
        assert "retry-after" not in r.headers
        if fast_path:
            assert _shed_count(http)[("shedding", "")] == 0


def test_shedding_one_application_leaves_the_others_served(store: Path, loader: Any) -> None:
    shed = LoadShed()
    with _serving(store, loader, shed) as h, httpx.Client(base_url=h.url) as http:
        shed.start("thermal: 93 C, trip point 95 C", 5, frozenset({APP}))
        assert http.post(f"/v2/models/{APP}/infer", content=kserve_body()).status_code == 429
        echo = {"inputs": [
            {"name": "half", "datatype": "FP16", "shape": [1, 3], "data": [1, 2, 3]},
            {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["belt"]},
            {"name": "flag", "datatype": "BOOL", "shape": [1], "data": [True]},
            {"name": "count", "datatype": "INT64", "shape": [1, 2], "data": [4, 5]},
        ]}  # fmt: skip
        r = http.post(f"/v2/models/{OTHER}/infer", json=echo)
        assert r.status_code == 200, r.text
        assert {o["name"] for o in r.json()["outputs"]} >= {"half_out", "text_out"}
        shed.stop()


def test_a_request_in_flight_when_shedding_starts_finishes(store: Path) -> None:
    shed = LoadShed()
    with _serving(store, slow_loader, shed) as h, httpx.Client(base_url=h.url, timeout=30) as http:
        results: list[httpx.Response] = []
        t = threading.Thread(
            target=lambda: results.append(
                http.post(f"/v2/models/{APP}/infer", content=kserve_body())
            )
        )
        t.start()
        deadline = time.monotonic() + 10
        while h.call(lambda: _depth(h.extra)) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        shed.start("load: p95 over budget", 1)
        refused = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        t.join(30)
        shed.stop()
    assert refused.status_code == 429
    assert results and results[0].status_code == 200, results[0].text


async def _depth(service: InferenceService) -> int:
    return service.queue_depths()[APP]
