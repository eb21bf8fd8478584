"""The HTTP API on a real loopback server: Triton's own client, bad input, metrics, auth."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.catalog import Store
from runtime.config import ApiSettings, Settings
from runtime.service import InferenceService
from tests.support.bad_requests import BAD_REQUESTS
from tests.support.http_server import ServerHandle, running_server, serving

APP = "part-id-reader"


def _settings(**api: Any) -> Settings:
    return Settings(demo=False, api=ApiSettings(**{"max_body_bytes": 256 * 1024, **api}))


def _serve(store: Path, loader: Any, *, queue_size: int = 64, **api: Any) -> Any:
    packages = [Store(store).load(APP), Store(store).load("echo")]
    return serving(
        packages, loader=loader, settings=_settings(**api), queue_size=queue_size, workers=2
    )


@pytest.fixture
def server(store: Path, loader: Any) -> Iterator[ServerHandle]:
    with _serve(store, loader) as handle:
        yield handle


def _x(rows: int = 2) -> np.ndarray:
    return np.random.default_rng(rows).uniform(0, 16, (rows, 64)).astype(np.float32)


def _in_process(server: ServerHandle, app: str, inputs: dict[str, np.ndarray]) -> Any:
    return server.call(lambda: server.extra.infer(app, inputs)).outputs


def test_triton_client_metadata_and_health(server: ServerHandle) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "headframe"
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata(APP)
    assert meta["versions"] == ["1.0.0"]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.is_model_ready(APP) and client.is_model_ready(APP, "1.0.0")
    assert not client.is_model_ready(APP, "2.0.0")
    assert client.get_model_metadata(APP, "1.0.0")["name"] == APP


@pytest.mark.parametrize("binary", [True, False])
def test_triton_client_infer_equals_in_process(server: ServerHandle, binary: bool) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    x = _x(5)
    inp = triton.InferInput("pixels", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer(APP, [inp], outputs=[out], request_id="abc")
    got = result.as_numpy("probabilities")
    assert result.get_response()["id"] == "abc"
    expected = _in_process(server, APP, {"pixels": x})["probabilities"]
    np.testing.assert_array_equal(got, expected)
    # the version route answers the same
    again = client.infer(APP, [inp], model_version="1.0.0", outputs=[out])
    np.testing.assert_array_equal(again.as_numpy("probabilities"), expected)


@pytest.mark.parametrize("binary", [True, False])
def test_triton_client_every_datatype_the_model_uses(server: ServerHandle, binary: bool) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    values = {
        "half": (np.array([[0.5, -1.25, 3.0], [1, 2, 4]], np.float16), "FP16"),
        "text": (np.array(["grüß".encode(), b"x"], dtype=object), "BYTES"),
        "flag": (np.array([True, False]), "BOOL"),
        "count": (np.array([[1, -(2**40)], [3, 4]], np.int64), "INT64"),
    }
    inputs = []
    for name, (arr, dt) in values.items():
        i = triton.InferInput(name, list(arr.shape), dt)
        i.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(i)
    outs = [triton.InferRequestedOutput(f"{n}_out", binary_data=binary) for n in values]
    result = client.infer("echo", inputs, outputs=outs)
    for name, (arr, _) in values.items():
        got = result.as_numpy(f"{name}_out").tolist()
        if name == "text" and not binary:  # tritonclient gives JSON BYTES back as str
            got = [g.encode() for g in got]
        assert got == arr.tolist(), name


def test_bad_input_gets_the_right_status_and_the_server_keeps_serving(
    server: ServerHandle,
) -> None:
    good = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1] * 64}]}
    with httpx.Client(base_url=server.url) as http:
        for what, body, headers, status, message in BAD_REQUESTS:
            r = http.post(f"/v2/models/{APP}/infer", content=body, headers=headers)
            assert r.status_code == status, (what, r.text)
            assert message in r.json()["error"], (what, r.text)
            assert http.post(f"/v2/models/{APP}/infer", json=good).status_code == 200, what
        # a body streamed without Content-Length is bounded too
        chunks = (b"x" * 65536 for _ in range(8))
        r = http.post(f"/v2/models/{APP}/infer", content=chunks)
        assert r.status_code == 413 and "over the limit" in r.json()["error"]
        r = http.post("/v2/models/nope/infer", json=good)
        assert r.status_code == 404 and "no application 'nope'" in r.json()["error"]
        r = http.post(f"/v2/models/{APP}/versions/7/infer", json=good)
        assert r.status_code == 404 and "not '7'" in r.json()["error"]
        r = http.get("/v2/models/nope")
        assert r.status_code == 404 and "error" in r.json()
        r = http.get("/no/such/route")
        assert r.status_code == 404 and r.json() == {"error": "Not Found"}
        assert http.post(f"/v2/models/{APP}/infer", json=good).status_code == 200


def test_full_queue_is_429_with_retry_after(store: Path, loader: Any) -> None:
    big = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [3000, 64],
                    "data": [1.0] * 3000 * 64,
                }
            ]
        }
    )
    codes: list[int] = []
    retry: list[str | None] = []

    with _serve(store, loader, queue_size=1, max_body_bytes=8 * 2**20) as server:

        def fire() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                for _ in range(4):
                    r = http.post(f"/v2/models/{APP}/infer", content=big)
                    codes.append(r.status_code)
                    if r.status_code == 429:
                        retry.append(r.headers.get("retry-after"))

        threads = [threading.Thread(target=fire) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(codes) <= {200, 429}
        assert 200 in codes
        if 429 in codes:  # how many pile up depends on the scheduler; the shape must not
            assert all(r is not None and int(r) >= 1 for r in retry)
        with httpx.Client(base_url=server.url) as http:
            assert http.post(f"/v2/models/{APP}/infer", content=big).status_code == 200


def test_metrics_parse_with_prometheus_parser(server: ServerHandle) -> None:
    good = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1] * 64}]}
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            http.post(f"/v2/models/{APP}/infer", json=good)
        http.post(f"/v2/models/{APP}/infer", content=b"{")
        r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    req = {
        (s.labels["app"], s.labels["status"]): s.value
        for s in families["headframe_requests"].samples
        if s.name == "headframe_requests_total"
    }
    assert req[(APP, "ok")] == 3 and req[(APP, "invalid_input")] == 1
    hist = families["headframe_request_duration_seconds"]
    count = next(s for s in hist.samples if s.name.endswith("_count") and s.labels["app"] == APP)
    assert count.value == 4
    inf = next(s for s in hist.samples if s.labels.get("le") == "+Inf" and s.labels["app"] == APP)
    assert inf.value == 4
    info = next(s for s in families["headframe_model_info"].samples if s.labels["app"] == APP)
    assert info.labels["variant"] == "large" and info.labels["backend"] == "onnx"
    assert families["process_resident_memory_bytes"].samples[0].value > 10 * 2**20
    assert families["headframe_ready"].samples[0].value == 1
    assert families["headframe_http_requests_in_flight"].samples[0].value == 1  # this one
    depth = {s.labels["app"]: s.value for s in families["headframe_queue_depth"].samples}
    assert depth[APP] == 0


def test_status_json_names_the_variant_and_openapi_is_served(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url) as http:
        doc = http.get("/status").json()
        apps = {a["app"]: a for a in doc["applications"]}
        assert apps[APP]["variant"] == "large" and apps[APP]["state"] == "serving"
        assert doc["server"]["ready"] is True
        spec = http.get("/openapi.json").json()
        assert "/v2/models/{model}/infer" in spec["paths"]


def test_admin_select_swaps_under_http_load_with_no_failed_request(server: ServerHandle) -> None:
    good = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1] * 64}]}
    stop = threading.Event()
    failures: list[str] = []
    counts = [0]

    def fire() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"/v2/models/{APP}/infer", json=good)
                if r.status_code != 200:
                    failures.append(r.text)
                counts[0] += 1

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for variant in ("small", "large", "small", "auto", "small"):
                r = http.post(f"/admin/models/{APP}/select", json={"variant": variant})
                assert r.status_code == 200, r.text
                expect = "large" if variant == "auto" else variant  # test loader's first
                assert r.json()["variant"] == expect
            r = http.post(f"/admin/models/{APP}/select", json={"variant": "nope"})
            assert r.status_code == 404 and "no variant 'nope'" in r.json()["error"]
            r = http.post("/admin/models/nope/select", json={"variant": "auto"})
            assert r.status_code == 404
            r = http.post(f"/admin/models/{APP}/select", json={})
            assert r.status_code == 400 and "variant" in r.json()["error"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and counts[0] > 10


def test_tokens_are_required_when_configured(store: Path, loader: Any) -> None:
    with (
        _serve(store, loader, tokens=["s3cret-token"]) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert http.get("/v2/health/live").status_code == 200  # probes stay open
        r = http.get(f"/v2/models/{APP}")
        assert r.status_code == 401 and "token" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
        bad = http.get(f"/v2/models/{APP}", headers={"Authorization": "Bearer s3cret-tokeX"})
        assert bad.status_code == 401
        ok = http.get(f"/v2/models/{APP}", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        assert http.get("/metrics").status_code == 401


def test_request_timeout_answers_504_and_the_server_keeps_serving(store: Path, loader: Any) -> None:
    big = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [20000, 64],
                    "data": [1.0] * 20000 * 64,
                }
            ]
        }
    )
    with _serve(store, loader, request_timeout_s=0.002, max_body_bytes=64 * 2**20) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            r = http.post(f"/v2/models/{APP}/infer", content=big)
            assert r.status_code == 504 and "request_timeout_s" in r.json()["error"]
            assert http.get("/v2/health/live").status_code == 200

        async def depth() -> int:
            await asyncio.sleep(0.5)  # the abandoned request still finishes on its thread
            return int(server.extra.queue_depths()[APP])

        assert server.call(depth) == 0


def test_triton_client_lists_the_repository_with_states(store: Path, loader: Any) -> None:
    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader)
        await service.add(Store(store).load(APP))
        with pytest.raises(KeyError):
            await service.add(Store(store).load("echo"), pin="no-such-variant")
        return create_app(service, settings=_settings(), context=ServerContext()), service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as h:
        client = triton.InferenceServerClient(f"127.0.0.1:{h.port}")
        index = client.get_model_repository_index()  # POST /v2/repository/index, no body
        with httpx.Client(base_url=h.url) as http:
            ready = http.post("/v2/repository/index", json={"ready": True}).json()
            bad = http.post("/v2/repository/index", content=b'{"ready": "yes"}')
    assert [row["name"] for row in index] == ["echo", APP]  # sorted by name
    assert index[1] == {"name": APP, "version": "1.0.0", "state": "READY"}
    assert index[0]["state"] == "UNAVAILABLE" and "no-such-variant" in index[0]["reason"]
    assert ready == [{"name": APP, "version": "1.0.0", "state": "READY"}]
    assert bad.status_code == 400 and '"ready" is true or false' in bad.json()["error"]
