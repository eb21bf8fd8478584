"""The backend table: lazy creation and plain reasons when a backend cannot run."""

from __future__ import annotations

import pytest

from runtime.backends.base import Backend
from runtime.backends.registry import available_backends, backends_for_format, create_backend
from runtime.errors import BackendUnavailable
from tests.support.synthetic import make_report, ort_runtime


def test_create_backend_returns_an_unloaded_backend() -> None:
    backend = create_backend("onnx")
    assert isinstance(backend, Backend)
    assert backend.name == "onnx"


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(
        BackendUnavailable, match=r"unknown backend 'tflite' \(known: onnx, openvino, llama\)"
    ):
        create_backend("tflite")


def test_available_backends_gives_a_reason_for_each_missing_runtime() -> None:
    result = available_backends(make_report(runtimes=[ort_runtime()]))
    assert result["onnx"] is None
    assert result["openvino"] == "openvino is not installed (pip install 'headframe[openvino]')"
    assert result["llama"] is not None and "llama_cpp is not installed" in result["llama"]


def test_formats_map_to_backends() -> None:
    assert backends_for_format("onnx") == ["onnx", "openvino"]
    assert backends_for_format("openvino") == ["openvino"]
    assert backends_for_format("gguf") == ["llama"]
