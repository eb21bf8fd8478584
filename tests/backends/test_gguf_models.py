"""The GGUF maker writes real llama files: llama.cpp loads them, tokenizes with their
vocabulary, applies their chat template and generates tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gguf_models import CHAT_TEMPLATE, write_llama_gguf
from tests.support.prereq import need_module

gguf = need_module("gguf")


def _fields(path: Path) -> dict[str, object]:
    reader = gguf.GGUFReader(str(path))
    return {name: field.contents() for name, field in reader.fields.items()}


def test_metadata_is_a_complete_llama_model(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "m.gguf", size="tiny", precision="f32")
    f = _fields(path)
    assert f["general.architecture"] == "llama"
    for key in (
        "llama.context_length", "llama.embedding_length", "llama.block_count",
        "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.rope.dimension_count",
        "llama.attention.layer_norm_rms_epsilon",
    ):  # fmt: skip
        assert key in f, key
    assert f["tokenizer.ggml.model"] == "llama"
    tokens = f["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list)
    assert len(tokens) == len(f["tokenizer.ggml.scores"]) == len(f["tokenizer.ggml.token_type"])
    assert tokens[f["tokenizer.ggml.eos_token_id"]] == "</s>"
    assert f["tokenizer.chat_template"] == CHAT_TEMPLATE
    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    expected = ["token_embd.weight", "output_norm.weight", "output.weight"] + [
        f"blk.1.{t}.weight"
        for t in ("attn_q", "attn_k", "attn_v", "attn_output", "attn_norm",
                  "ffn_gate", "ffn_up", "ffn_down", "ffn_norm")
    ]  # fmt: skip
    for n in expected:
        assert n in names, n


def test_sizes_and_precisions_really_differ_and_seed_is_reproducible(tmp_path: Path) -> None:
    sizes = {
        (s, p): write_llama_gguf(tmp_path / f"{s}-{p}.gguf", size=s, precision=p).stat().st_size
        for s in ("tiny", "small")
        for p in ("f32", "f16", "q8_0")
    }
    for p in ("f32", "f16", "q8_0"):
        assert sizes[("small", p)] > 4 * sizes[("tiny", p)]
    for s in ("tiny", "small"):
        assert sizes[(s, "f32")] > sizes[(s, "f16")] > sizes[(s, "q8_0")]
    again = write_llama_gguf(tmp_path / "again.gguf", size="tiny", precision="q8_0")
    assert again.read_bytes() == (tmp_path / "tiny-q8_0.gguf").read_bytes()
    other = write_llama_gguf(tmp_path / "other.gguf", size="tiny", precision="q8_0", seed=1)
    assert other.read_bytes() != again.read_bytes()


def test_bad_size_or_precision_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        write_llama_gguf(tmp_path / "x.gguf", size="huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        write_llama_gguf(tmp_path / "x.gguf", precision="int3")  # type: ignore[arg-type]


@pytest.mark.llm
@pytest.mark.parametrize(
    ("size", "precision"), [("tiny", "f32"), ("tiny", "q8_0"), ("small", "f16")]
)
def test_llama_cpp_loads_and_generates(tmp_path: Path, size: str, precision: str) -> None:
    llama_cpp = need_module("llama_cpp")
    path = write_llama_gguf(tmp_path / "m.gguf", size=size, precision=precision)  # type: ignore[arg-type]
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
    try:
        # The vocabulary is real: whole words are single tokens after the BOS token.
        assert len(llm.tokenize(b"conveyor belt")) == 3
        out = llm.create_completion("the pump", max_tokens=12, seed=3, temperature=0.8)
        choice = out["choices"][0]
        assert out["usage"]["completion_tokens"] == 12
        assert choice["finish_reason"] == "length"
        assert choice["text"].strip() and choice["text"].isprintable()
        # The chat template comes from the file.
        assert llm.chat_format == "chat_template.default"
        chat = llm.create_chat_completion(
            [{"role": "user", "content": "status check"}], max_tokens=5, seed=3
        )
        assert chat["choices"][0]["message"]["content"]
        assert chat["usage"]["prompt_tokens"] > 5
    finally:
        llm.close()
