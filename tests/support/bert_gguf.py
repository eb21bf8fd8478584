"""A small random-weight BERT GGUF that llama.cpp loads as an embedding model.

What llama.cpp's converter writes for a sentence-transformers BERT: architecture
``bert`` (bidirectional attention: ``bert.attention.causal = false``), ``bert.pooling_type``
(mean), a WordPiece vocabulary in llama.cpp's form (``tokenizer.ggml.model = "bert"``;
a word-initial piece carries the "▁" phantom space, a "##" continuation is written
without it), the [CLS]/[SEP]/[PAD]/[UNK]/[MASK] control tokens, and every tensor of a
post-norm BERT block (q/k/v/output attention with biases, output and layer norms with
biases, GELU feed-forward up/down with biases) after token, type and position
embeddings with their norm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_WORDS = [
    "the", "a", "of", "to", "and", "is", "in", "on", "belt", "motor", "pump", "conveyor",
    "fault", "alarm", "sensor", "valve", "line", "stop", "start", "bearing", "torque", "seal",
    "replace", "weekly", "crusher", "manual", "check", "error", "code", "part",
]  # fmt: skip
N_EMBD, N_LAYER, N_HEAD, N_FF, N_CTX = 64, 2, 4, 128, 128


def _vocab() -> tuple[list[str], list[int]]:
    import gguf

    tt = gguf.TokenType
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    types = [tt.CONTROL] * 5
    pieces = ["▁" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces += list("abcdefghijklmnopqrstuvwxyz0123456789")  # "##x" continuations
    pieces += ["▁" + p for p in ".,:;!?-/()"]
    pieces += ["▁" + w for w in _WORDS]
    pieces = list(dict.fromkeys(pieces))  # llama.cpp refuses a vocabulary with duplicates
    tokens += pieces
    types += [tt.NORMAL] * len(pieces)
    return tokens, [int(t) for t in types]


def write_bert_gguf(path: str | Path, *, seed: int = 0, pooling: str = "mean") -> Path:
    """Write the model to ``path``; ``pooling`` "mean", "cls" or "none" (none: no key)."""
    import gguf

    tokens, types = _vocab()
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_name("headframe-test-bert")
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_block_count(N_LAYER)
    w.add_head_count(N_HEAD)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    if pooling != "none":
        w.add_pooling_type({"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS}[pooling])
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_type_count(2)
    w.add_unk_token_id(1)
    w.add_pad_token_id(0)
    w.add_sep_token_id(3)
    w.add_mask_token_id(4)
    w.add_bos_token_id(2)
    w.add_eos_token_id(3)
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)

    def rand(*shape: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(name: str) -> None:
        w.add_tensor(f"{name}.weight", np.ones(N_EMBD, np.float32))
        w.add_tensor(f"{name}.bias", np.zeros(N_EMBD, np.float32))

    w.add_tensor("token_embd.weight", rand(len(tokens), N_EMBD, std=1.0))
    w.add_tensor("token_types.weight", rand(2, N_EMBD))
    w.add_tensor("position_embd.weight", rand(N_CTX, N_EMBD))
    norm("token_embd_norm")
    scale = 1.0 / np.sqrt(N_EMBD)
    for i in range(N_LAYER):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{part}.weight", rand(N_EMBD, N_EMBD, std=scale))
            w.add_tensor(f"blk.{i}.{part}.bias", np.zeros(N_EMBD, np.float32))
        norm(f"blk.{i}.attn_output_norm")
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(N_FF, N_EMBD, std=scale))
        w.add_tensor(f"blk.{i}.ffn_up.bias", np.zeros(N_FF, np.float32))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(N_EMBD, N_FF, std=1.0 / np.sqrt(N_FF)))
        w.add_tensor(f"blk.{i}.ffn_down.bias", np.zeros(N_EMBD, np.float32))
        norm(f"blk.{i}.layer_output_norm")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
