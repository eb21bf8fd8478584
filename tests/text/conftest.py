"""Fixtures for the text tests: a store holding a real GGUF text application."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from runtime.api.openai import router
from runtime.backends.base import Backend, LoadOptions
from runtime.catalog import ModelPackage, Store, Variant
from runtime.service import InferenceService
from tests.support.text_models import write_text_package

pytest.importorskip("llama_cpp")

from runtime.backends.llama import LlamaBackend


@pytest.fixture(scope="session")
def text_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text-store")
    write_text_package(root)
    return root


@pytest.fixture(scope="session")
def text_package(text_store: Path) -> ModelPackage:
    return Store(text_store).load("assistant")


@pytest.fixture(scope="module")
def tiny(text_package: ModelPackage) -> Iterator[LlamaBackend]:
    """The tiny f32 variant loaded in llama.cpp, shared by a module's tests."""
    backend = LlamaBackend()
    backend.load(text_package.variant("tiny-f32"), LoadOptions(intra_op_threads=1))
    yield backend
    backend.unload()


@dataclass
class Loaded:
    """What runtime.service expects from a loader (runtime.loader.LoadedModel's shape)."""

    package: ModelPackage
    variant: Variant
    backend: Backend
    selection: Any = None
    attempts: list[Any] = field(default_factory=list)


def direct_loader(package: ModelPackage, pin: str | None) -> Loaded:
    """Opens the pinned (else first) variant with the backend its format calls for."""
    variant = package.variant(pin) if pin else package.variants[0]
    backend: Backend
    if variant.meta.format == "gguf":
        backend = LlamaBackend()
    else:
        from runtime.backends.onnx import OnnxBackend

        backend = OnnxBackend()
    backend.load(variant, LoadOptions(intra_op_threads=1))
    return Loaded(package, variant, backend)


@dataclass
class Server:
    url: str
    service: InferenceService
    loop: asyncio.AbstractEventLoop


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def text_server(text_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The OpenAI router over a real InferenceService serving "assistant" (tiny-f32),
    a tensor app "part-id-reader" and a text app "broken" whose GGUF is corrupt."""
    from tests.support.serving_models import write_linear_package

    extra = tmp_path_factory.mktemp("extra-store")
    tensor_pkg = write_linear_package(extra)
    broken = write_text_package(extra, app="broken", variants=(("v", "tiny", "q8_0"),))
    (broken.variants[0].entrypoint).write_bytes(b"GGUF" + b"\x00" * 64)
    holder: dict[str, Any] = {}
    service = InferenceService(direct_loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.add(Store(text_store).load("assistant"), pin="tiny-f32")
        await service.add(tensor_pkg)
        with contextlib.suppress(Exception):
            await service.add(broken)
        holder["loop"] = asyncio.get_running_loop()
        yield
        await service.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(router(service))
    with serve(app) as url:
        yield Server(url, service, holder["loop"])
