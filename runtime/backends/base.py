"""The Backend contract: one seam between headframe and a native inference runtime.

A backend instance holds at most one loaded variant. Construction is cheap and never
imports the runtime; ``load`` does the heavy work (and the import). ``infer`` and
``generate`` are blocking and are called from the model's worker thread, never from
the event loop (where the HTTP and MQTT I/O run). One instance is used by one worker at a
time unless ``thread_safe`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from runtime.catalog import TensorSpec, Variant
from runtime.config import EmbeddingSettings

Device = Literal["cpu", "gpu", "npu", "auto"]


@dataclass(frozen=True)
class LoadOptions:
    """What the device profile and settings say about how to load."""

    device: str = "cpu"  # "cpu", "gpu", "npu", "auto" (or a runtime-specific name like "GPU.1")
    intra_op_threads: int = 0  # 0: the runtime decides
    inter_op_threads: int = 0
    cache_dir: str | None = None  # compiled-model cache (OpenVINO CACHE_DIR, ORT optimised model)
    providers: tuple[str, ...] = ()  # onnxruntime execution providers in order, when set
    gpu_layers: int = 0  # llama.cpp n_gpu_layers; -1 for all
    context_tokens: int = 2048  # llama.cpp n_ctx
    performance_hint: str = "LATENCY"  # OpenVINO: LATENCY or THROUGHPUT
    task: str = "tensor"  # the package's task: "embedding" loads a model for vectors
    # [embeddings]: an embedding model's limits per request and its token batches
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)


@dataclass(frozen=True)
class IOSchema:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class GenerationRequest:
    """A text request after the transport decoded it. ``messages`` or ``prompt``, not both.

    ``grammar`` (GBNF, from runtime.structured) constrains every sampled token. ``tools``
    go to a chat template that knows them; a template that does not gets
    ``tool_instructions`` as a system message instead.
    """

    messages: tuple[Mapping[str, Any], ...] | None = None
    prompt: str | None = None
    max_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None
    grammar: str | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_instructions: str | None = None


@dataclass(frozen=True)
class GenerationChunk:
    """One piece of generated text; the last chunk has ``finish_reason`` set."""

    text: str
    finish_reason: Literal["stop", "length"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class BackendInfo:
    """What is actually in use, for /status, /metrics and MQTT info."""

    backend: str
    device: str
    detail: dict[str, str] = field(
        default_factory=dict
    )  # e.g. {"provider": "CPUExecutionProvider"}


@runtime_checkable
class Backend(Protocol):
    """A loaded model. See the module docstring for the threading rules."""

    name: str  # "onnx", "openvino", "llama"
    thread_safe: bool  # True if infer may run on several threads at once

    def load(self, variant: Variant, options: LoadOptions) -> None:
        """Open and prepare the variant's entrypoint. Raises BackendUnavailable when the
        runtime is not installed or lacks the device, BackendLoadError on a bad file."""

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one (possibly batched) request. Inputs are already validated against describe()."""

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Text models only: yield chunks as tokens are produced."""

    # Embedding models (package task "embedding") answer ``infer`` with
    # {"text": BYTES [n]} -> {"embedding": FP32 [n, dim], "tokens": INT64 [n]}:
    # one L2-normalised vector and the token count per text (EMBEDDING_SCHEMA).

    def describe(self) -> IOSchema:
        """Input and output tensors as the loaded model declares them."""

    def info(self) -> BackendInfo:
        """The backend, device and provider actually in use."""

    def unload(self) -> None:
        """Release the model; safe to call twice."""
