"""Slow headers and too many connections (issue 25, item 12): 200 half-sent requests stayed
open 60 s without a token. The daemon's HTTP server (runtime.api.server.start_http) now
closes a connection whose request headers are not complete within api.header_timeout_s
(with a 408), and closes a new connection past api.max_connections at once, on both of
uvicorn's HTTP implementations (httptools as shipped, h11 where httptools is missing),
while well-behaved clients are served throughout."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from runtime.api import slow_clients
from runtime.api.server import HttpServer, start_http
from runtime.config import ApiSettings
from tests.support.loop_thread import LoopThread

TIMEOUT_S = 1.0


async def _app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    body = b'{"live":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"13")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    kind = request.param
    real = slow_clients.protocol
    monkeypatch.setattr("runtime.api.server.protocol", lambda api: real(api, kind))
    api = ApiSettings(port=0, header_timeout_s=TIMEOUT_S, max_connections=250)
    with LoopThread() as lt:
        http: HttpServer = lt.call(start_http(_app, api, 1.0))
        try:
            yield http.url
        finally:
            http.server.should_exit = True
            lt.call(asyncio.wait_for(http.task, 10))


def _half_sent(url: str, n: int) -> list[socket.socket]:
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    return socks


def _closed(s: socket.socket, wait_s: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection open."""
    s.settimeout(wait_s)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def test_half_sent_headers_are_cut_at_the_header_timeout(server: str) -> None:
    socks = _half_sent(server, 200)
    try:
        started = time.monotonic()
        assert httpx.get(f"{server}/v2/health/live", timeout=5).status_code == 200  # served
        deadline = started + TIMEOUT_S + 3.0
        answers = [_closed(s, max(0.05, deadline - time.monotonic())) for s in socks]
        took = time.monotonic() - started
    finally:
        for s in socks:
            s.close()
    assert all(a is not None for a in answers), "a slow-headers connection was left open"
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers if a)
    assert took < TIMEOUT_S + 3.0 + 200 * 0.05


def test_a_kept_alive_connection_gets_the_timeout_for_its_next_request(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(5)
        first = b""
        while not first.endswith(b'{"live":true}'):
            first += s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        # A few bytes now and then keep uvicorn's own keep-alive timer off for ever.
        for piece in (b"GET ", b"/v2/", b"health"):
            s.sendall(piece)
            time.sleep(TIMEOUT_S / 3)
        assert (_closed(s, TIMEOUT_S + 3.0) or b"").startswith(b"HTTP/1.1 408")


def test_connections_past_the_limit_are_closed_at_once(server: str) -> None:
    socks = _half_sent(server, 250)
    try:
        port = int(server.rsplit(":", 1)[1])
        extra = socket.create_connection(("127.0.0.1", port))
        assert _closed(extra, 2.0) == b""  # closed without an answer
        extra.close()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    assert httpx.get(f"{server}/v2/health/live", timeout=5).status_code == 200


def test_without_the_parsers_hooks_the_server_runs_on_uvicorns_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A uvicorn whose protocol lost a hook this relies on: served as uvicorn serves, and
    the log says the two limits are off and why."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    monkeypatch.delattr(HttpToolsProtocol, "on_headers_complete")
    with caplog.at_level("WARNING", logger="runtime.api.slow_clients"):
        chosen = slow_clients.protocol(ApiSettings(), "httptools")
    assert chosen == "httptools"
    assert "no header timeout or connection limit" in caplog.text
    assert "on_headers_complete" in caplog.text
