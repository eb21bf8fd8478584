"""Idle unload (``InferenceService.park``) and reload on the next request, over real HTTP
on loopback with the real onnx backend: the application stays ready and listed while
parked, /status says "parked (idle since ...)", the first request after parking carries
X-Headframe-Reload-Ms, concurrent first requests load the model once, a reload that fails
answers 503 naming the app and the cause and the next request tries again, and parking
waits for requests in flight and is refused during a swap."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.catalog import ModelPackage, Store
from runtime.config import Settings
from runtime.service import InferenceService
from tests.support.http_server import ServerHandle, running_server
from tests.support.loaders import SLOW_S, Loaded, ort_loader, slow_loader
from tests.support.serving_models import kserve_body

APP = "part-id-reader"


class CountingLoader:
    """The tests' real loader (onnxruntime), counting the loads it performs."""

    def __init__(self, load: Any = ort_loader) -> None:
        self.load, self.calls = load, 0
        self._lock = threading.Lock()

    def __call__(self, package: ModelPackage, pin: str | None) -> Loaded:
        with self._lock:
            self.calls += 1
        loaded: Loaded = self.load(package, pin)
        return loaded


def _serve(store: Path, loader: Any) -> Any:
    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader, workers=2)
        await service.add(Store(store).load(APP))
        app = create_app(service, settings=Settings(demo=False), context=ServerContext())
        return app, service

    async def close(service: InferenceService) -> None:
        await service.close()

    return running_server(build, close=close)


@pytest.fixture
def loads() -> CountingLoader:
    return CountingLoader()


@pytest.fixture
def server(store: Path, loads: CountingLoader) -> Iterator[ServerHandle]:
    with _serve(store, loads) as handle:
        yield handle


def _park(h: ServerHandle) -> bool:
    service: InferenceService = h.extra
    return bool(h.call(lambda: service.park(APP)))


def _app_status(http: httpx.Client) -> dict[str, Any]:
    apps = http.get("/status").json()["applications"]
    return next(a for a in apps if a["app"] == APP)


def test_parked_app_stays_ready_and_the_first_request_reloads_it(
    server: ServerHandle, loads: CountingLoader
) -> None:
    service: InferenceService = server.extra
    with httpx.Client(base_url=server.url, timeout=30) as http:
        warm = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        assert warm.status_code == 200 and "x-headframe-reload-ms" not in warm.headers
        used = service.last_used(APP)
        assert used is not None

        assert _park(server) is True
        assert _park(server) is False  # already parked
        assert loads.calls == 1
        assert http.get("/v2/health/ready").json() == {"ready": True}
        assert http.get(f"/v2/models/{APP}/ready").json()["ready"] is True
        assert http.get(f"/v2/models/{APP}").json()["name"] == APP  # metadata from the slot
        status = _app_status(http)
        assert status["state"].startswith("parked (idle since "), status["state"]
        assert status["queue_depth"] == 0
        assert "parked (idle since" in http.get("/").text  # the status page says so too

        cold = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        assert cold.status_code == 200, cold.text
        assert int(cold.headers["x-headframe-reload-ms"]) >= 0
        assert cold.json()["outputs"] == warm.json()["outputs"]  # the same model again
        assert loads.calls == 2
        assert _app_status(http)["state"] == "serving"
        again = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        assert "x-headframe-reload-ms" not in again.headers
        last = service.last_used(APP)
        assert last is not None and last > used


def test_concurrent_first_requests_load_once(server: ServerHandle, loads: CountingLoader) -> None:
    assert _park(server)
    with httpx.Client(base_url=server.url, timeout=30) as http, ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: http.post(f"/v2/models/{APP}/infer", content=kserve_body()), range(8)
            )
        )
    assert [r.status_code for r in answers] == [200] * 8
    assert loads.calls == 2  # the start-up load and one reload
    waited = [r.headers.get("x-headframe-reload-ms") for r in answers]
    assert any(w is not None for w in waited)


def test_a_failed_reload_answers_503_and_the_next_request_tries_again(
    server: ServerHandle, store: Path
) -> None:
    service: InferenceService = server.extra
    model = service.slot(APP).variant.entrypoint
    saved = model.with_suffix(".saved")
    shutil.copy(model, saved)
    assert _park(server)
    model.write_bytes(b"not an onnx model")  # the disk went bad while the app was idle
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        assert r.status_code == 503
        assert APP in r.json()["error"] and "failed" in r.json()["error"]
        assert "retry-after" in r.headers
        state = _app_status(http)["state"]
        assert state.startswith("parked (reload failed: "), state
        assert http.get("/v2/health/ready").json() == {"ready": True}

        shutil.copy(saved, model)
        r = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        assert r.status_code == 200, r.text
        assert "x-headframe-reload-ms" in r.headers
        assert _app_status(http)["state"] == "serving"


def test_parking_waits_for_requests_in_flight(store: Path) -> None:
    with _serve(store, slow_loader) as h, httpx.Client(base_url=h.url, timeout=30) as http:
        service: InferenceService = h.extra
        results: list[httpx.Response] = []
        t = threading.Thread(
            target=lambda: results.append(
                http.post(f"/v2/models/{APP}/infer", content=kserve_body())
            )
        )
        t.start()
        while h.call(lambda: _depth(service)) == 0:
            pass
        started = time.monotonic()
        assert _park(h)  # returns once the request in flight has finished
        waited = time.monotonic() - started
        t.join(SLOW_S * 10)
        assert results and results[0].status_code == 200, results
        assert waited >= SLOW_S / 2  # it waited for the slow request rather than cutting it


def test_parking_is_refused_while_a_swap_is_in_progress(store: Path) -> None:
    with _serve(store, slow_loader) as h:
        service: InferenceService = h.extra

        async def swap_and_park() -> tuple[bool, bool]:
            import asyncio

            swap = asyncio.create_task(service.swap(APP))
            await asyncio.sleep(0)  # the swap holds the app's lock, loading
            during = await service.park(APP)
            await swap
            return during, await service.park(APP)

        during, after = h.call(swap_and_park)
    assert (during, after) == (False, True)


async def _depth(service: InferenceService) -> int:
    return service.queue_depths()[APP]


def test_a_swap_of_a_parked_app_serves_the_new_load(server: ServerHandle) -> None:
    """The fleet or the governor may swap an application while it is parked: the swap
    loads and serves, and the parked slot (already unloaded) is not unloaded twice."""
    service: InferenceService = server.extra
    assert _park(server)
    slot = server.call(lambda: service.swap(APP))
    assert slot.state == "serving"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post(f"/v2/models/{APP}/infer", content=kserve_body())
        assert r.status_code == 200 and "x-headframe-reload-ms" not in r.headers
        assert _app_status(http)["state"] == "serving"
