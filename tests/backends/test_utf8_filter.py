"""The strict UTF-8 decoder behind the grammar-time token filter (issue 25, item 3): it
agrees with Python's own strict decoder on every byte string, never lets a sample leave
the answer invalid, never leaves a request with no token to sample (llama.cpp aborts the
process then), and keeps the two states where llama.cpp's lenient grammar decoder would
disagree with it out of reach."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.backends.utf8_filter import STATES, Utf8Table, step

# A byte-fallback vocabulary: the 256 byte tokens, ASCII pieces, whole characters, and
# the partial pieces byte-level BPE vocabularies hold (a lead and a continuation byte).
BYTES = [bytes([b]) for b in range(256)]
PIECES = [*BYTES, b"the", b" belt", "é".encode(), "€".encode(), "😀".encode(), b"\xe0\xa4",
          b"\xf0\x9f", b"\xf0\x9f\x98", b"\xa4\x80", b"", "ok\u0905".encode()]  # fmt: skip


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=2000)
@given(st.binary(max_size=12))
def test_the_decoder_accepts_exactly_what_python_accepts(data: bytes) -> None:
    assert (step(0, data) == 0) == _valid(data)


def test_every_two_byte_sequence_and_the_edges_of_the_longer_ones() -> None:
    for a in range(256):
        for b in range(256):
            pair = bytes([a, b])
            assert (step(0, pair) == 0) == _valid(pair), pair.hex()
    for seq in ("\u0800", "\uffff", "\U00010000", "\U0010ffff", "\ud7ff", "\ue000"):
        assert step(0, seq.encode()) == 0
    for bad in (b"\xc0\xa2", b"\xe0\x80\xa2", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5"):
        assert step(0, bad) == -1, bad.hex()  # overlong, surrogate, past U+10FFFF


def test_random_walks_through_the_filter_spell_valid_utf8_and_never_dead_end() -> None:
    table = Utf8Table(PIECES)
    rng = random.Random(25)
    for _ in range(3000):
        f = table.new_filter()
        out = b""
        for _ in range(rng.randint(1, 40)):
            scores = np.zeros(len(PIECES), dtype=np.float32)
            allowed = np.flatnonzero(np.isfinite(f(None, scores)))
            assert allowed.size, f"no token left after {out!r}"
            token = int(rng.choice(list(allowed)))
            out += PIECES[token]
            f.accept(token)
            assert f.state in STATES
        if f.state == 0:
            assert _valid(out), out


@pytest.mark.parametrize("lead", [0xE0, 0xF0])
def test_no_token_may_end_on_a_bare_e0_or_f0(lead: int) -> None:
    # There llama.cpp's lenient decoder still allows the overlong forms (spelling ASCII)
    # this filter refuses: where the grammar wants '"', no token would be left.
    table = Utf8Table(PIECES)
    assert not table.allowed[0][lead]
    two = PIECES.index(b"\xe0\xa4" if lead == 0xE0 else b"\xf0\x9f")
    assert table.allowed[0][two]  # with its second byte, the lead is fine


def test_control_tokens_are_refused_and_states_nobody_can_leave_are_never_entered() -> None:
    pieces = [b"a", b"", b"\xc3", b"\xa9"]
    table = Utf8Table(pieces, refused=[False, True, False, False])
    assert not table.allowed[0][1]  # the grammar would read other text than the answer gets
    # Without continuation bytes a lead byte could never be finished: it is refused.
    no_tail = Utf8Table([b"a", b"\xc3"])
    assert list(no_tail.allowed[0]) == [True, False]
