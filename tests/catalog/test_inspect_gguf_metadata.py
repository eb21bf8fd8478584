"""GGUF metadata of an unexpected type or size (issue 25, item 14): ``models add`` gave a
traceback, or took 3.2 GB of memory from a 288-byte file, when ``block_count`` was a
string or ``head_count_kv`` a per-layer array. Now every number it reads is checked for
type and range: exit 2 with one line naming the key, and a per-layer ``head_count_kv``
(as some real models have) is read as one value per layer.

The CLI runs in a child process under an address-space limit, so the unfixed code fails
instead of taking the test machine's memory."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.catalog.inspect import inspect_gguf

ARCH = "llama"


def _gguf(path: Path, fill: Callable[[Any], None]) -> Path:
    """A GGUF holding only metadata (no tensors): general.architecture plus ``fill``."""
    import gguf

    w = gguf.GGUFWriter(str(path), ARCH)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _sane(w: Any, skip: str = "") -> None:
    values = {"block_count": 32, "embedding_length": 4096, "attention.head_count": 32,
              "context_length": 4096}  # fmt: skip
    for key, value in values.items():
        if key != skip:
            w.add_uint32(f"{ARCH}.{key}", value)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _add(path: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "models", "add", str(path), "--store", str(store)],
        capture_output=True, text=True, timeout=120, preexec_fn=_limited,
    )  # fmt: skip


BAD: dict[str, tuple[Callable[[Any], None], str]] = {
    "block_count-as-a-string": (
        lambda w: (_sane(w, skip="block_count"), w.add_string(f"{ARCH}.block_count", "32")),
        f"{ARCH}.block_count: an integer, not a string",
    ),
    "block_count-of-a-trillion": (
        lambda w: (_sane(w, skip="block_count"), w.add_uint64(f"{ARCH}.block_count", 10**12)),
        f"{ARCH}.block_count: 1000000000000 is out of range",
    ),
    "embedding_length-as-an-array": (
        lambda w: (
            _sane(w, skip="embedding_length"),
            w.add_array(f"{ARCH}.embedding_length", [4096] * 4),
        ),
        f"{ARCH}.embedding_length: an integer, not a list",
    ),
    "kv-heads-per-layer-of-the-wrong-length": (
        lambda w: (_sane(w), w.add_array(f"{ARCH}.attention.head_count_kv", [8] * 3)),
        "head_count_kv: 3 values for 32 layers",
    ),
    "file_type-as-a-string": (
        lambda w: (_sane(w), w.add_string("general.file_type", "q4")),
        "general.file_type: an integer, not a string",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_metadata_is_exit_2_with_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    fill, message = BAD[case]
    path = _gguf(tmp_path / "model.gguf", fill)
    assert path.stat().st_size < 2048
    out = _add(path, tmp_path / "store")
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], out.stderr


def test_per_layer_kv_heads_are_read_per_layer(tmp_path: Path) -> None:
    # 16 layers with 8 KV heads and 16 with none (attention-free layers, as hybrids have).
    kv = [8] * 16 + [0] * 16
    path = _gguf(
        tmp_path / "hybrid.gguf",
        lambda w: (_sane(w), w.add_array(f"{ARCH}.attention.head_count_kv", kv)),
    )
    info = inspect_gguf(path)
    # f16 K and V for 2048 tokens: 2 x 2 bytes x 2048 x (4096 / 32 x 8) per attention layer
    assert info.runtime_bytes == 16 * 2 * 2 * 2048 * (4096 // 32 * 8)
