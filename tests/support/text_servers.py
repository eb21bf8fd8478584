"""Fixtures for the text tests (a plugin of tests/conftest.py): a store holding a real GGUF
text application, llama.cpp loading it, and servers on loopback over it. A test module
that uses them calls ``need_module("llama_cpp")`` first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runtime.backends.base import LoadOptions
from runtime.catalog import ModelPackage, Store
from runtime.config import Settings
from runtime.hardware.report import HardwareReport, RuntimeInfo
from runtime.loading.loader import VariantLoader
from runtime.profiles import DeviceProfile
from runtime.service import InferenceService
from tests.support.box import box_for
from tests.support.http_server import serving
from tests.support.synthetic import installed_runtimes, make_profile, make_report
from tests.support.text_models import write_text_package

if TYPE_CHECKING:
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
    from runtime.backends.llama import LlamaBackend

    backend = LlamaBackend()
    backend.load(text_package.variant("tiny-f32"), LoadOptions(intra_op_threads=1))
    yield backend
    backend.unload()


@pytest.fixture(scope="session")
def bytes_package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    """A text package whose byte-fallback tokens are sampled like any other (they spell
    invalid UTF-8 too, as a real vocabulary's can)."""
    root = tmp_path_factory.mktemp("bytes-store")
    return write_text_package(
        root, app="bytes-assistant", variants=(("tiny-f32", "tiny", "f32"),), bytes_sampled=True
    )


@pytest.fixture(scope="module")
def tiny_bytes(bytes_package: ModelPackage) -> Iterator[LlamaBackend]:
    """The byte-fallback tiny f32 variant loaded in llama.cpp."""
    from runtime.backends.llama import LlamaBackend

    backend = LlamaBackend()
    backend.load(bytes_package.variant("tiny-f32"), LoadOptions(intra_op_threads=1))
    yield backend
    backend.unload()


@pytest.fixture(scope="module")
def bytes_server(
    bytes_package: ModelPackage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server for "bytes-assistant" alone (the byte-fallback vocabulary)."""
    state = tmp_path_factory.mktemp("bytes-state")
    settings = Settings(paths={"state_dir": state / "state", "cache_dir": state / "cache"})
    loader = VariantLoader(box_for(settings, text_report(), text_profile()))
    with serving([bytes_package], loader=loader, settings=settings) as handle:
        yield Server(handle.url, handle.extra)


@pytest.fixture(params=["tiny", "tiny_bytes"])
def each_tiny(request: pytest.FixtureRequest) -> LlamaBackend:
    """Each tiny model in turn: the plain vocabulary, then the byte-fallback one."""
    backend: LlamaBackend = request.getfixturevalue(request.param)
    return backend


def text_profile() -> DeviceProfile:
    """A CPU box whose profile runs GGUF through llama.cpp and ONNX through onnxruntime."""
    return make_profile(
        targets=[{"backend": "llama", "device": "cpu"}, {"backend": "onnx", "device": "cpu"}],
        precisions=["fp32", "f32", "f16", "q8_0"],
        threads={"intra_op": 1, "inter_op": 1},
    )


def text_report() -> HardwareReport:
    """This machine's runtimes, llama.cpp included, on an 8 GiB box."""
    import llama_cpp

    llama = RuntimeInfo("llama_cpp", True, llama_cpp.__version__, ("cpu",))
    return make_report(runtimes=(*installed_runtimes(), llama))


@dataclass
class Server:
    url: str
    service: InferenceService


@pytest.fixture(scope="module")
def text_server(text_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The daemon's composition on loopback: create_app over an InferenceService whose
    VariantLoader selects and loads variants. It serves "assistant" (the selection picks
    its smallest variant, tiny-q8_0), a tensor app "part-id-reader", and a text app
    "broken" whose only GGUF is corrupt (so it stays not ready)."""
    from tests.support.serving_models import write_linear_package

    extra = tmp_path_factory.mktemp("extra-store")
    tensor_pkg = write_linear_package(extra)
    broken = write_text_package(extra, app="broken", variants=(("v", "tiny", "q8_0"),))
    broken.variants[0].entrypoint.write_bytes(b"GGUF" + b"\x00" * 64)
    state = tmp_path_factory.mktemp("state")
    settings = Settings(paths={"state_dir": state / "state", "cache_dir": state / "cache"})
    loader = VariantLoader(box_for(settings, text_report(), text_profile()))

    packages = [Store(text_store).load("assistant"), tensor_pkg, broken]
    # "broken" stays failed: the API must say so while the others serve
    with serving(packages, loader=loader, settings=settings, tolerate_failures=True) as handle:
        yield Server(handle.url, handle.extra)


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server for agents and retrieval: "assistant" (text, one tiny f32 variant),
    "gguf-embedder" (the GGUF in llama.cpp's embedding mode) and "encoder" (an ONNX
    sentence encoder with its tokenizer.json, truncation allowed), micro-batching on."""
    from runtime.config import ApplicationSettings
    from tests.support.embedding_models import (
        write_gguf_embedding_package,
        write_onnx_encoder_package,
    )

    store = tmp_path_factory.mktemp("agent-store")
    packages = [
        write_text_package(store, variants=(("tiny-f32", "tiny", "f32"),)),
        write_gguf_embedding_package(store),
        write_onnx_encoder_package(store, max_tokens=32),
    ]
    state = tmp_path_factory.mktemp("agent-state")
    settings = Settings(paths={"state_dir": state / "state", "cache_dir": state / "cache"})
    loader = VariantLoader(box_for(settings, text_report(), text_profile()))
    batching = {
        name: ApplicationSettings(name=name, max_batch=8, batch_wait_ms=2.0)
        for name in ("gguf-embedder", "encoder")
    }

    with serving(packages, loader=loader, settings=settings, app_settings=batching) as handle:
        yield Server(handle.url, handle.extra)
