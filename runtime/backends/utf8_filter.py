"""Only valid UTF-8 leaves a model under a grammar: a token filter for llama.cpp.

llama.cpp's grammar sampler matches code points that its own decoder reads from each
token's bytes (``decode_utf8`` in llama-grammar.cpp), and that decoder is lenient: it
takes the lead bytes C0, C1 and F5..FF, overlong forms (C0 A2 reads as ``"``), surrogates
and values past U+10FFFF. A vocabulary with byte-fallback tokens (``<0x00>``..``<0xFF>``,
as SentencePiece and byte-level BPE models have) can spell all of those one byte at a
time, and Python reads the same bytes as several U+FFFD: a string the grammar held to 12
characters arrived with 18, and the answer failed its schema.

``Utf8Filter`` is a logits processor (llama-cpp-python's ``logits_processor``, which runs
before the grammar in the sampler chain): it keeps a strict UTF-8 decoder's state (RFC
3629) across the tokens one request samples, and gives -inf to every token whose bytes
would make the answer invalid UTF-8 from that state. Where strict decoding accepts, the
lenient one reads the same code points, so what the grammar checked is what the client
gets. Two more rules keep the filter and the grammar from contradicting each other, which
would leave no token to sample (llama.cpp then aborts the process):

- a token may not end just after a bare E0 or F0 lead byte: there the lenient decoder
  still allows the overlong continuations (E0 80..9F, F0 80..8F, spelling ASCII) that
  this filter refuses, so at a place where the grammar wants ``"`` both would be stuck.
  A character U+0800..U+0FFF or U+10000..U+3FFFF is then written by a token holding its
  first two bytes, or not at all: a narrowing, like the rest of the grammar's
  (docs/text.md);
- a token whose text differs between what the grammar reads and what the answer gets
  (a control token: the grammar sees ``<|im_start|>``, the answer nothing) is refused;
  end-of-generation tokens are the grammar's to allow.

Without the grammar char classes over Unicode scalar values (runtime.structured.gbnf),
the first rule would not be enough: a surrogate the grammar allows has only an invalid
spelling. The table is built once per loaded model (one pass over the vocabulary) and
shared; each request gets its own ``Utf8Filter``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

# States of the strict decoder: 0 complete; otherwise bytes still owed and the range the
# next one must fall in (RFC 3629, table 3-7).
_OWED: dict[int, tuple[int, int, int]] = {
    1: (1, 0x80, 0xBF),
    2: (2, 0x80, 0xBF),
    3: (3, 0x80, 0xBF),
    4: (2, 0xA0, 0xBF),  # after E0: no overlong three-byte form
    5: (2, 0x80, 0x9F),  # after ED: no surrogate
    6: (3, 0x90, 0xBF),  # after F0: no overlong four-byte form
    7: (3, 0x80, 0x8F),  # after F4: nothing past U+10FFFF
}
# Never the state a token leaves: the lenient decoder would allow more there (see above).
_NO_END = frozenset({4, 6})
STATES = (0, 1, 2, 3, 5, 7)  # the states a request can be in between tokens
_ERROR = -1


def _lead(b: int) -> int:
    if b < 0x80:
        return 0
    if 0xC2 <= b <= 0xDF:
        return 1
    if b == 0xE0:
        return 4
    if b == 0xED:
        return 5
    if 0xE1 <= b <= 0xEF:
        return 2
    if b == 0xF0:
        return 6
    if 0xF1 <= b <= 0xF3:
        return 3
    if b == 0xF4:
        return 7
    return _ERROR  # a continuation byte, C0, C1, F5..FF


def step(state: int, data: bytes) -> int:
    """The strict decoder's state after ``data`` from ``state``; -1 if invalid."""
    for b in data:
        if state == 0:
            state = _lead(b)
            if state == _ERROR:
                return _ERROR
            continue
        owed, lo, hi = _OWED[state]
        if not lo <= b <= hi:
            return _ERROR
        state = 0 if owed == 1 else owed - 1  # then any continuation byte: states 1..3
    return state


class Utf8Table:
    """Per state: which tokens may come next, and the state each leaves."""

    def __init__(self, pieces: Sequence[bytes], refused: Sequence[bool] = ()) -> None:
        """``pieces``: each token's bytes as the answer gets them; ``refused``: tokens never
        to sample under a grammar whatever the state (see the module docstring)."""
        n = len(pieces)
        self.size = n
        always_out = np.zeros(n, dtype=bool)
        if len(refused):
            always_out[: len(refused)] = np.asarray(refused, dtype=bool)
        self.allowed = {s: np.zeros(n, dtype=bool) for s in STATES}
        self.ends = {s: np.full(n, _ERROR, dtype=np.int8) for s in STATES}
        for i, piece in enumerate(pieces):
            if not piece:
                for s in STATES:
                    self.ends[s][i] = s
                continue
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:  # the common case: whole characters, valid from a complete state only
                self.ends[0][i] = 0
                continue
            for s in STATES:
                self.ends[s][i] = step(s, piece)
        for s in STATES:
            end = self.ends[s]
            self.allowed[s] = (end != _ERROR) & ~np.isin(end, list(_NO_END)) & ~always_out
        self._drop_dead_ends()

    def _drop_dead_ends(self) -> None:
        """A state no token can continue from (a vocabulary without continuation bytes)
        must never be entered: refuse the tokens that lead there, until nothing changes."""
        while True:
            dead = [s for s in STATES if s != 0 and not self.allowed[s].any()]
            changed = False
            for s in STATES:
                into_dead = self.allowed[s] & np.isin(self.ends[s], dead)
                if into_dead.any():
                    self.allowed[s] &= ~into_dead
                    changed = True
            if not changed:
                return

    def new_filter(self) -> Utf8Filter:
        return Utf8Filter(self)


class Utf8Filter:
    """One request's filter: call it as a logits processor, ``accept`` each sampled token."""

    def __init__(self, table: Utf8Table) -> None:
        self.table = table
        self.state = 0

    def __call__(self, input_ids: Any, scores: np.ndarray) -> np.ndarray:
        allowed = self.table.allowed[self.state]
        n = min(len(scores), len(allowed))
        scores[:n][~allowed[:n]] = -np.inf
        return scores

    def accept(self, token: int) -> None:
        end = int(self.table.ends[self.state][token]) if 0 <= token < self.table.size else 0
        # An end that is not a state between tokens cannot follow a filtered sample; if
        # it happens anyway (a token the filter never saw), start afresh.
        self.state = end if end in STATES else 0


def llama_token_pieces(llama_cpp: Any, vocab: Any, n_vocab: int) -> tuple[list[bytes], list[bool]]:
    """Each token's bytes as the answer gets them (special tokens unrendered), and whether
    the grammar reads other text for it than that (special tokens rendered) and it is not
    an end-of-generation token."""
    buf = ctypes.create_string_buffer(256)

    def piece(token: int, special: bool) -> bytes:
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
        if n < 0:  # longer than the buffer: ask again with room for it
            big = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(vocab, token, big, len(big), 0, special)
            return big.raw[:n]
        return buf.raw[:n]

    pieces: list[bytes] = []
    refused: list[bool] = []
    for token in range(n_vocab):
        out = piece(token, False)
        pieces.append(out)
        differs = piece(token, True) != out
        refused.append(differs and not llama_cpp.llama_vocab_is_eog(vocab, token))
    return pieces, refused
