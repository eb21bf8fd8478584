"""Write small random-weight llama-architecture GGUF files that llama.cpp really loads.

The file is a complete llama model as llama.cpp expects it: hyperparameters under the
``llama.*`` keys, a SentencePiece ("llama") vocabulary with byte fallback, control tokens
and scores, a ChatML chat template in ``tokenizer.chat_template``, and every tensor of a
llama block (q/k/v/o attention with grouped KV heads, SwiGLU feed-forward, RMS norms).

The weights are random but shaped so the output stays readable: every token embedding
carries a large constant in dimension 0, so after the final RMS norm that dimension is
always strongly positive, and the output rows of control and byte tokens have a large
negative weight there. Generation therefore yields printable ASCII pieces and never an
end-of-sequence token, so a request runs to ``max_tokens`` unless a stop string hits.

Sizes and precisions (two of each, so a text application has real variants):
- ``tiny``: 2 layers, width 64; ``small``: 4 layers, width 256; ``base`` (benchmarks):
  8 layers, width 768, about 50M parameters.
- ``f32``, ``f16`` and ``q8_0`` (quantized with ``gguf.quants``; norms stay f32 as
  llama.cpp's own quantizer leaves them).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Size = Literal["tiny", "small", "base"]
Precision = Literal["f32", "f16", "q8_0"]

# ChatML, as many real GGUFs ship it. llama-cpp-python renders it with Jinja2.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Whole words (with SentencePiece's word-boundary mark) so prompts tokenize compactly.
_WORDS = " ".join(
    (
        "the and of to in is it that for on with as was are be this by at from or an not",
        "belt motor pump conveyor fault alarm sensor valve line stop start hello world",
        "status check part ok yes no temperature pressure",
    )
).split()


@dataclass(frozen=True)
class _Dims:
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx: int


_SIZES: dict[str, _Dims] = {
    "tiny": _Dims(n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=128, n_ctx=2048),
    "small": _Dims(n_embd=256, n_layer=4, n_head=8, n_head_kv=4, n_ff=768, n_ctx=2048),
    # ~50M parameters: per-token compute of a small real model, for benchmarks.
    "base": _Dims(n_embd=768, n_layer=8, n_head=12, n_head_kv=4, n_ff=2048, n_ctx=2048),
}

BOS_ID, EOS_ID, UNK_ID = 1, 2, 0


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece vocabulary: control tokens, 256 byte tokens, chars, word prefixes."""
    import gguf

    tt = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [tt.UNKNOWN, tt.CONTROL, tt.CONTROL, tt.CONTROL, tt.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [tt.BYTE] * 256
    pieces: list[str] = ["▁"]
    pieces += [c for c in string.ascii_letters + string.digits + string.punctuation]
    # Every prefix of "▁word" must exist: SentencePiece merges adjacent pieces only
    # when the merged piece is itself in the vocabulary.
    for word in _WORDS:
        full = "▁" + word
        for end in range(2, len(full) + 1):
            if full[:end] not in pieces:
                pieces.append(full[:end])
    tokens += pieces
    types += [tt.NORMAL] * len(pieces)
    # Longer pieces score higher so merges prefer whole words.
    scores = [0.0] * (len(tokens) - len(pieces)) + [float(len(p)) for p in pieces]
    return tokens, scores, [int(t) for t in types]


def _suppressed(types: list[int], bytes_sampled: bool) -> np.ndarray:
    """Tokens generation should never pick: control, unknown and (unless ``bytes_sampled``)
    byte tokens."""
    import gguf

    allowed = {int(gguf.TokenType.NORMAL)}
    if bytes_sampled:
        allowed.add(int(gguf.TokenType.BYTE))
    return np.array([t not in allowed for t in types], dtype=bool)


def write_llama_gguf(
    path: str | Path,
    *,
    size: Size = "tiny",
    precision: Precision = "f32",
    seed: int = 0,
    chat_template: str = CHAT_TEMPLATE,
    bytes_sampled: bool = False,
) -> Path:
    """Write a random-weight llama GGUF to ``path`` and return it (same seed, same bytes).

    ``bytes_sampled``: the byte-fallback tokens ``<0x00>``..``<0xFF>`` are as likely as
    any other, as in a real SentencePiece or BPE model writing text its vocabulary has no
    piece for; sampled freely they spell invalid UTF-8 too (a lone continuation byte, an
    overlong or surrogate sequence, a lead byte with nothing after it)."""
    import gguf

    if size not in _SIZES:
        raise ValueError(f"size must be one of {sorted(_SIZES)}, not {size!r}")
    qtypes = {
        "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
        "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
        "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    }
    if precision not in qtypes:
        raise ValueError(f"precision must be one of {sorted(qtypes)}, not {precision!r}")
    qtype, file_type = qtypes[precision]
    d = _SIZES[size]
    head_dim = d.n_embd // d.n_head
    n_embd_kv = head_dim * d.n_head_kv
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"headframe-test-llama-{size}-{precision}")
    w.add_file_type(int(file_type))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_vocab_size(n_vocab)
    w.add_context_length(d.n_ctx)
    w.add_embedding_length(d.n_embd)
    w.add_block_count(d.n_layer)
    w.add_feed_forward_length(d.n_ff)
    w.add_head_count(d.n_head)
    w.add_head_count_kv(d.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_pad_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(chat_template)

    def weight(name: str, rows: int, cols: int, std: float) -> None:
        # numpy (rows, cols) is ggml's (ne0=cols, ne1=rows): rows are output features.
        data = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
        _add(w, name, data, qtype)

    def norm(name: str, n: int) -> None:
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    emb = (rng.standard_normal((n_vocab, d.n_embd))).astype(np.float32)
    emb[:, 0] = 8.0  # the constant that keeps dimension 0 positive after every norm
    _add(w, "token_embd.weight", emb, qtype)
    proj_std = 0.5 / np.sqrt(d.n_embd)
    for i in range(d.n_layer):
        norm(f"blk.{i}.attn_norm.weight", d.n_embd)
        weight(f"blk.{i}.attn_q.weight", d.n_embd, d.n_embd, 1.0 / np.sqrt(d.n_embd))
        weight(f"blk.{i}.attn_k.weight", n_embd_kv, d.n_embd, 1.0 / np.sqrt(d.n_embd))
        weight(f"blk.{i}.attn_v.weight", n_embd_kv, d.n_embd, 1.0 / np.sqrt(d.n_embd))
        weight(f"blk.{i}.attn_output.weight", d.n_embd, d.n_embd, proj_std)
        norm(f"blk.{i}.ffn_norm.weight", d.n_embd)
        weight(f"blk.{i}.ffn_gate.weight", d.n_ff, d.n_embd, 1.0 / np.sqrt(d.n_embd))
        weight(f"blk.{i}.ffn_up.weight", d.n_ff, d.n_embd, 1.0 / np.sqrt(d.n_embd))
        weight(f"blk.{i}.ffn_down.weight", d.n_embd, d.n_ff, proj_std)
    norm("output_norm.weight", d.n_embd)
    out = rng.standard_normal((n_vocab, d.n_embd)).astype(np.float32)
    out[:, 0] = 0.0
    out[_suppressed(types, bytes_sampled), 0] = -12.0
    _add(w, "output.weight", out, qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _add(writer: object, name: str, data: np.ndarray, qtype: object) -> None:
    import gguf

    assert isinstance(writer, gguf.GGUFWriter)
    assert isinstance(qtype, gguf.GGMLQuantizationType)
    if qtype == gguf.GGMLQuantizationType.F32:
        writer.add_tensor(name, data)
    elif qtype == gguf.GGMLQuantizationType.F16:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        q = gguf.quants.quantize(data, qtype)
        writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
