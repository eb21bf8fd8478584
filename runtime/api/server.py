"""The daemon's HTTP server: uvicorn on the configured address, started on the daemon's
loop, with the daemon (not uvicorn) owning the signals.

``start_http(app, api)`` binds, waits until uvicorn listens and returns the server, its
task and the URL it serves on; a bind that fails raises here, before anything slow.
Setting ``server.should_exit`` stops accepting and lets requests in flight finish within
``drain_timeout_s``. A client must send a request's headers within
``api.header_timeout_s`` and at most ``api.max_connections`` are open at once
(runtime.api.slow_clients).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from runtime.api.slow_clients import protocol
from runtime.config import ApiSettings
from runtime.errors import HeadframeError


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM, SIGINT, SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class HttpServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str


async def start_http(app: Any, api: ApiSettings, drain_timeout_s: float) -> HttpServer:
    """Serve ``app`` on ``api.host``:``api.port`` (TLS when both files are set)."""
    tls = {}
    if api.tls_cert_file or api.tls_key_file:
        tls = {"ssl_certfile": str(api.tls_cert_file), "ssl_keyfile": str(api.tls_key_file)}
    config = uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        # A header timeout and a connection limit, which uvicorn lacks (slow_clients.py).
        http=protocol(api),
        log_config=None,
        access_log=False,
        # X-Forwarded-For rewriting of the client address: nothing here reads the
        # client address (no access log, tokens and Host decide), so it only cost time.
        proxy_headers=False,
        lifespan="off",
        timeout_graceful_shutdown=int(drain_timeout_s),
        **tls,  # type: ignore[arg-type]
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if serving.done():
            serving.result()  # raises the bind error
            raise HeadframeError(f"the HTTP server on {api.host}:{api.port} did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    host = f"[{api.host}]" if ":" in api.host else api.host
    return HttpServer(server, serving, f"{scheme}://{host}:{port}")
