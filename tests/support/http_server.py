"""A real uvicorn server on a loopback port, run on its own event loop in a thread.

``running_server(build)`` calls ``await build()`` on the server's loop (so services and
their workers belong to that loop), serves the FastAPI app it returns on 127.0.0.1 at a
port the OS picks, and stops it on exit. ``handle.call(coro_fn)`` runs a coroutine on
the server's loop from the test thread (to swap a model while clients fire, say).
``serving(packages, loader=..., settings=...)`` is the common case: headframe's app over an
``InferenceService`` holding those packages.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn


@dataclass
class ServerHandle:
    url: str
    port: int
    loop: asyncio.AbstractEventLoop
    app: Any
    extra: Any

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
        async def run() -> Any:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


@contextmanager
def running_server(
    build: Callable[[], Awaitable[tuple[Any, Any]]],
    *,
    close: Callable[[Any], Awaitable[None]] | None = None,
    ssl: dict[str, str] | None = None,
) -> Iterator[ServerHandle]:
    """``build()`` returns (asgi_app, extra); ``close(extra)`` runs on the loop at the end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        try:
            app, extra = await build()
        except BaseException as e:
            state["error"] = e
            started.set()
            raise
        state["app"], state["extra"] = app, extra
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, **(
                {"ssl_certfile": ssl["cert"], "ssl_keyfile": ssl["key"]} if ssl else {}
            )
        )  # fmt: skip
        server = uvicorn.Server(config)
        state["server"] = server
        serve = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serve.done():
            await asyncio.sleep(0.01)
        started.set()
        await serve
        if close is not None:
            await close(extra)

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(60)
    if "error" in state:
        raise state["error"]
    scheme = "https" if ssl else "http"
    handle = ServerHandle(f"{scheme}://127.0.0.1:{port}", port, loop, state["app"], state["extra"])
    try:
        yield handle
    finally:
        server = state["server"]
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)
        thread.join(30)
        loop.close()
        sock.close()


@contextmanager
def serving(
    packages: Sequence[Any],
    *,
    loader: Any,
    settings: Any,
    context: Any = None,
    tolerate_failures: bool = False,
    **service_options: Any,
) -> Iterator[ServerHandle]:
    """headframe's HTTP app over an ``InferenceService(loader, **service_options)`` that
    has ``packages`` added; ``handle.extra`` is the service, closed at the end. With
    ``tolerate_failures`` a package that fails to load stays failed and the rest serve.
    The admin route pins through a real change path over a real box (its pins in a
    temporary state directory); the loader loads the pin in force (``box_loader``)."""
    from runtime.api.app import create_app
    from runtime.api.context import ServerContext
    from runtime.service import InferenceService
    from runtime.service.changes import ChangePath
    from tests.support.loaders import box_loader, make_box

    with tempfile.TemporaryDirectory() as state:
        box = make_box(Path(state))

        async def build() -> tuple[Any, InferenceService]:
            service = InferenceService(box_loader(box, loader), **service_options)
            for package in packages:
                try:
                    await service.add(package)
                except Exception:
                    if not tolerate_failures:
                        raise
            changes = ChangePath(service, lambda: box)
            context_ = context or ServerContext()
            app = create_app(service, settings=settings, context=context_, changes=changes)
            return app, service

        async def close(service: InferenceService) -> None:
            await service.close()

        with running_server(build, close=close) as handle:
            yield handle
