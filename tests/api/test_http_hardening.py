"""Findings of the outside review, over real HTTP on loopback: huge shapes, oversize
streamed bodies on routes with a body model, DNS rebinding, unknown model names in
/metrics, and node readiness with one broken application."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.catalog import Store
from runtime.config import ApiSettings, Settings
from runtime.service import UNKNOWN_APP
from tests.support.http_server import ServerHandle, serving
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
GOOD = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1] * 64}]}
MAX_BODY = 64 * 1024


def _serve(store: Path, loader: Any, apps: tuple[str, ...] = (APP, "echo"), **api: Any) -> Any:
    settings = Settings(demo=False, api=ApiSettings(**{"max_body_bytes": MAX_BODY, **api}))
    packages = [Store(store).load(app) for app in apps]
    # a broken application stays failed; the others serve
    return serving(
        packages, loader=loader, settings=settings, tolerate_failures=True,
        workers=1, readiness=settings.api.readiness,
    )  # fmt: skip


@pytest.fixture
def server(store: Path, loader: Any) -> Iterator[ServerHandle]:
    with _serve(store, loader) as handle:
        yield handle


def _tensor(shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": shape, "data": data}]}


def test_huge_shape_dimensions_are_400_and_the_server_keeps_serving(server: ServerHandle) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [0, 2**62, 2**62],
                    "parameters": {"binary_data_size": 0},
                }
            ]
        }
    )
    with httpx.Client(base_url=server.url) as http:
        for path in (f"/v2/models/{APP}/infer", f"/v2/models/{APP}/versions/1.0.0/infer"):
            for shape in ([0, 2**62, 2**62], [2**40, 0], [0, 2**31, 2**31, 2]):
                r = http.post(path, json=_tensor(shape, []))
                assert r.status_code == 400, (path, shape, r.text)
                assert "describes more than" in r.json()["error"], r.text
            r = http.post(
                path,
                content=header,
                headers={"Inference-Header-Content-Length": str(len(header))},
            )
            assert r.status_code == 400 and "describes more than" in r.json()["error"], r.text
            # a zero-size batch within the bound is an ordinary request
            assert http.post(path, json=_tensor([0, 64], [])).status_code in (200, 400)
        assert http.post(f"/v2/models/{APP}/infer", json=GOOD).status_code == 200


def _chunks(total: int) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length) that starts like valid JSON."""
    yield b'{"variant": "'
    sent = 0
    while sent < total:
        yield b"x" * 8192
        sent += 8192


def test_oversize_streamed_bodies_get_413_on_routes_with_a_body_model(
    server: ServerHandle,
) -> None:
    with httpx.Client(base_url=server.url) as http:
        for path in (
            f"/admin/models/{APP}/select",
            "/v1/chat/completions",
            "/v1/completions",
            f"/v2/models/{APP}/infer",
        ):
            r = http.post(path, content=_chunks(4 * MAX_BODY))
            assert r.status_code == 413, (path, r.status_code, r.text)
            assert "over the limit" in r.text, r.text
        # under the limit, the same routes still parse their bodies
        r = http.post(f"/admin/models/{APP}/select", json={"variant": "small"})
        assert r.status_code == 200 and r.json()["variant"] == "small"
        r = http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
        assert r.status_code in (400, 404) and "error" in r.json()
        assert http.post(f"/v2/models/{APP}/infer", json=GOOD).status_code == 200


def test_a_rebinding_host_is_refused_on_a_loopback_bind(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url) as http:
        for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io"):
            for method, path in (("POST", f"/admin/models/{APP}/select"), ("GET", "/status")):
                r = http.request(method, path, json={"variant": "auto"}, headers={"Host": host})
                assert r.status_code == 400, (host, path, r.text)
                assert "api.trusted_hosts" in r.json()["error"]
        for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]", "LOCALHOST"):
            assert http.get("/v2/health/ready", headers={"Host": host}).status_code == 200, host


def test_trusted_hosts_can_be_configured(store: Path, loader: Any) -> None:
    with (
        _serve(store, loader, trusted_hosts=["headframe.plant", "*.site.example"]) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for host, status in (
            ("headframe.plant", 200),
            (f"box7.site.example:{server.port}", 200),
            ("localhost", 200),
            ("site.example", 400),
            ("evil.example", 400),
        ):
            assert http.get("/v2/health/live", headers={"Host": host}).status_code == status, host
    with (
        _serve(store, loader, trusted_hosts=["*"]) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert http.get("/v2/health/live", headers={"Host": "anything.example"}).status_code == 200


def _request_series(text: str) -> dict[tuple[str, str, str], float]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {
        (s.labels["app"], s.labels["protocol"], s.labels["status"]): s.value
        for s in families["headframe_requests"].samples
        if s.name == "headframe_requests_total"
    }


def test_unknown_model_names_are_one_series_in_metrics(server: ServerHandle) -> None:
    names = 300
    with httpx.Client(base_url=server.url) as http:
        assert http.post(f"/v2/models/{APP}/infer", json=GOOD).status_code == 200
        for i in range(names):
            chat = {"model": f"ghost{i}", "messages": [{"role": "user", "content": "hi"}]}
            assert http.post("/v1/chat/completions", json=chat).status_code == 404
            assert http.post(f"/v2/models/ghost{i}/infer", json=GOOD).status_code == 404
        # and through the service itself, as the MQTT bridge calls it
        for i in range(names):
            with pytest.raises(Exception, match="no application"):
                server.call(lambda i=i: server.extra.infer(f"mqtt-ghost{i}", {}, protocol="mqtt"))
        text = http.get("/metrics").text
    series = _request_series(text)
    assert {app for app, _, _ in series} <= {APP, "echo", UNKNOWN_APP}
    assert series[(UNKNOWN_APP, "openai", "not_found")] == names
    # The service counts every refusal, the ones HTTP sends it too.
    assert series[(UNKNOWN_APP, "kserve", "not_found")] == names
    assert series[(UNKNOWN_APP, "mqtt", "not_found")] == names
    assert series[(APP, "kserve", "ok")] == 1
    assert "ghost" not in text
    assert len(text) < 64 * 1024


def test_one_broken_application_leaves_the_node_ready_by_default(
    tmp_path: Path, loader: Any
) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    write_linear_package(store, app="broken", variants=("only",))
    (store / "broken" / "1.0.0" / "variants" / "only" / "model.onnx").unlink()
    apps = (APP, "broken")
    for readiness, node in (("not_failed", 200), ("all", 503), ("any", 200)):
        with (
            _serve(store, loader, apps, readiness=readiness) as server,
            httpx.Client(base_url=server.url) as http,
        ):
            assert http.get("/v2/health/ready").status_code == node, readiness
            assert http.get(f"/v2/models/{APP}/ready").status_code == 200
            assert http.get("/v2/models/broken/ready").status_code == 503
            assert http.post(f"/v2/models/{APP}/infer", json=GOOD).status_code == 200
            ready = {
                s.name: s.value
                for f in text_string_to_metric_families(http.get("/metrics").text)
                for s in f.samples
            }["headframe_ready"]
            assert ready == (1 if node == 200 else 0)
    # every application broken: not ready in any mode
    with (
        _serve(store, loader, ("broken",)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        assert http.get("/v2/health/ready").status_code == 503
