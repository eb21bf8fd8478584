"""The llama backend on real GGUF files: loading, streaming, sampling controls, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.backends.base import Backend, GenerationChunk, GenerationRequest, LoadOptions
from runtime.backends.llama import LlamaBackend, _split_at_stop
from runtime.catalog import ModelPackage, Variant
from runtime.errors import BackendLoadError, BackendUnavailable, InvalidInput
from tests.support.prereq import need_module

need_module("llama_cpp")  # every test here runs llama.cpp

PROMPT = GenerationRequest(prompt="the conveyor belt", max_tokens=24, seed=7)


def _text(chunks: list[GenerationChunk]) -> str:
    return "".join(c.text for c in chunks)


def test_is_a_backend_and_describes_text(tiny: LlamaBackend) -> None:
    assert isinstance(tiny, Backend)
    assert tiny.thread_safe is False
    schema = tiny.describe()
    assert [(s.name, s.datatype) for s in schema.inputs] == [("text", "BYTES")]
    info = tiny.info()
    assert (info.backend, info.device) == ("llama", "cpu")
    assert info.detail["chat_template"] == "gguf"
    assert info.detail["n_threads"] == "1"


@pytest.mark.parametrize("variant", ["tiny-q8_0", "small-f16"])
def test_every_variant_loads_and_generates(text_package: ModelPackage, variant: str) -> None:
    backend = LlamaBackend()
    backend.load(text_package.variant(variant), LoadOptions(intra_op_threads=1))
    try:
        chunks = list(backend.generate(PROMPT))
    finally:
        backend.unload()
    assert chunks[-1].completion_tokens == 24
    assert _text(chunks).strip()


def test_streams_one_chunk_per_token_with_running_counts(tiny: LlamaBackend) -> None:
    chunks = list(tiny.generate(PROMPT))
    # Every token of this vocabulary decodes to visible text, so each is its own chunk.
    assert len(chunks) == 24
    assert [c.completion_tokens for c in chunks] == list(range(1, 25))
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].prompt_tokens == 4  # BOS + "▁the" + "▁conveyor" + "▁belt"


def test_same_seed_same_text_other_seed_other_text(tiny: LlamaBackend) -> None:
    a = _text(list(tiny.generate(PROMPT)))
    b = _text(list(tiny.generate(PROMPT)))
    c = _text(list(tiny.generate(GenerationRequest(prompt=PROMPT.prompt, max_tokens=24, seed=8))))
    assert a == b
    assert a != c


def test_temperature_zero_is_greedy_whatever_the_seed(tiny: LlamaBackend) -> None:
    texts = {
        _text(list(tiny.generate(GenerationRequest(prompt="pump", temperature=0.0, seed=s))))
        for s in (1, 2, 3)
    }
    assert len(texts) == 1


def test_stop_string_ends_the_text_before_it(tiny: LlamaBackend) -> None:
    full = _text(list(tiny.generate(PROMPT)))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    chunks = list(tiny.generate(GenerationRequest(prompt=PROMPT.prompt, max_tokens=24, seed=7,
                                                  stop=("zzzz-never", stop))))  # fmt: skip
    assert _text(chunks) == full[: full.index(stop)]
    assert chunks[-1].finish_reason == "stop"
    assert all(stop not in c.text for c in chunks)
    assert chunks[-1].completion_tokens < 24


def test_max_tokens_counts_tokens(tiny: LlamaBackend) -> None:
    chunks = list(tiny.generate(GenerationRequest(prompt="status", max_tokens=3, seed=1)))
    assert chunks[-1].completion_tokens == 3
    assert chunks[-1].finish_reason == "length"


def test_chat_uses_the_template_from_the_gguf(tiny: LlamaBackend) -> None:
    messages = ({"role": "system", "content": "ok"}, {"role": "user", "content": "status check"})
    chunks = list(tiny.generate(GenerationRequest(messages=messages, max_tokens=5, seed=1)))
    llm = tiny._llm
    rendered = (
        "<s><|im_start|>system\nok<|im_end|>\n<|im_start|>user\nstatus check<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    expected = llm.tokenize(rendered.encode(), add_bos=False, special=True)
    assert chunks[-1].prompt_tokens == len(expected)
    assert _text(chunks)


def test_prompt_longer_than_the_context_is_invalid_input(text_package: ModelPackage) -> None:
    backend = LlamaBackend()
    backend.load(text_package.variant("tiny-q8_0"), LoadOptions(context_tokens=100))
    try:
        with pytest.raises(InvalidInput, match="context holds 256"):
            list(backend.generate(GenerationRequest(prompt="the pump " * 200)))
        # the backend is still usable afterwards
        assert list(backend.generate(GenerationRequest(prompt="pump", max_tokens=2)))
    finally:
        backend.unload()


def test_kserve_style_infer_completes_each_prompt(tiny: LlamaBackend) -> None:
    out = tiny.infer({"text": np.array([b"hello", b"world"], dtype=object)})
    assert out["text"].shape == (2,)
    assert all(isinstance(t, bytes) and t for t in out["text"])


def _variant(tmp_path: Path, data: bytes) -> Variant:
    from runtime.catalog import FileEntry, VariantMeta

    (tmp_path / "model.gguf").write_bytes(data)
    meta = VariantMeta(
        variant="bad", format="gguf", precision="f32", entrypoint="model.gguf",
        files=(FileEntry(path="model.gguf", sha256="0" * 64, size=len(data)),),
        bytes=len(data), peak_memory_bytes=len(data),
    )  # fmt: skip
    return Variant(meta, tmp_path)


def test_corrupt_or_missing_file_is_a_clear_load_error(tmp_path: Path) -> None:
    with pytest.raises(BackendLoadError, match="not a GGUF file"):
        LlamaBackend().load(_variant(tmp_path, b"PK\x03\x04 junk"), LoadOptions())
    with pytest.raises(BackendLoadError, match="could not load"):
        LlamaBackend().load(_variant(tmp_path, b"GGUF" + b"\x00" * 64), LoadOptions())
    v = _variant(tmp_path, b"x")
    (tmp_path / "model.gguf").unlink()
    with pytest.raises(BackendLoadError, match="not found"):
        LlamaBackend().load(v, LoadOptions())


def test_unknown_device_is_unavailable_and_unload_is_idempotent(
    text_package: ModelPackage,
) -> None:
    backend = LlamaBackend()
    with pytest.raises(BackendUnavailable, match="npu"):
        backend.load(text_package.variant("tiny-q8_0"), LoadOptions(device="npu"))
    backend.unload()
    backend.unload()
    with pytest.raises(BackendLoadError, match="no model loaded"):
        list(backend.generate(PROMPT))


def test_without_llama_cpp_load_says_how_to_install(text_package: ModelPackage) -> None:
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"
        "from runtime.backends.llama import LlamaBackend\n"
        "from runtime.backends.base import LoadOptions\n"
        "from runtime.catalog import load_package\n"
        "from runtime.errors import BackendUnavailable\n"
        f"pkg = load_package(__import__('pathlib').Path({str(text_package.path)!r}))\n"
        "try:\n"
        "    LlamaBackend().load(pkg.variants[0], LoadOptions())\n"
        "except BackendUnavailable as e:\n"
        "    print('UNAVAILABLE', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "UNAVAILABLE" in out.stdout
    assert "headframe[llm]" in out.stdout


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("hello wor", ("world",), ("hello ", "wor", False)),
        ("hello world!", ("world",), ("hello ", "", True)),
        ("abc", (), ("abc", "", False)),
        ("xab", ("abc", "bz"), ("x", "ab", False)),
        ("a\nb", ("\n",), ("a", "", True)),
    ],
)
def test_split_at_stop_holds_back_only_what_could_still_match(
    text: str, stops: tuple[str, ...], expected: tuple[str, str, bool]
) -> None:
    assert _split_at_stop(text, stops) == expected


def test_the_registry_creates_it_by_name(text_package: ModelPackage) -> None:
    from runtime.backends.registry import create_backend

    backend = create_backend("llama")
    assert isinstance(backend, LlamaBackend)
    backend.load(text_package.variant("tiny-q8_0"), LoadOptions(intra_op_threads=1))
    try:
        assert list(backend.generate(GenerationRequest(prompt="ok", max_tokens=2)))
    finally:
        backend.unload()
