"""GBNF text helpers: literals, repetition and exact integer ranges.

Pure string building for llama.cpp's grammar format (GBNF). ``integer_range`` writes the
integers in [lo, hi] digit by digit (the classic numeric-range construction), so a bound
is exact rather than checked afterwards.
"""

from __future__ import annotations

import json
from typing import Any

INT_DIGITS = 18  # unbounded integers: at most this many digits (int64 fits)
# Unicode scalar values: every code point but the surrogates. llama.cpp's grammar reads
# code points from bytes with a lenient decoder, so a negated class ([^"]) would also
# match surrogates and values past U+10FFFF, which have no valid UTF-8 spelling.
_SCALARS = ((0x0, 0xD7FF), (0xE000, 0x10FFFF))


def _escape(cp: int) -> str:
    return f"\\x{cp:02X}" if cp < 0x80 else f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def scalar_class(exclude: str = "", below: int = 0) -> str:
    """A GBNF character class of every Unicode scalar value except the characters in
    ``exclude`` and the code points under ``below``: positive ranges only, never ``[^...]``."""
    cut = sorted({ord(c) for c in exclude} | set(range(below)))
    ranges: list[tuple[int, int]] = []
    for lo, hi in _SCALARS:
        start = lo
        for c in cut:
            if start <= c <= hi:
                if c > start:
                    ranges.append((start, c - 1))
                start = c + 1
        if start <= hi:
            ranges.append((start, hi))
    body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    return f"[{body}]"


def literal(text: str) -> str:
    """``text`` as a GBNF string literal (ASCII only, everything else escaped)."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04X}")
        else:
            out.append(f"\\U{o:08X}")
    return '"' + "".join(out) + '"'


def json_literal(value: Any) -> str:
    """A JSON value's compact text as a GBNF literal (non-ASCII as \\u escapes)."""
    return literal(json.dumps(value, ensure_ascii=True, separators=(",", ":")))


def paren(expr: str) -> str:
    return f"({expr})" if "|" in expr or " " in expr.strip() else expr


def repeat(expr: str, lo: int, hi: int | None) -> str:
    e = paren(expr)
    if hi is None:
        return f"{e}*" if lo == 0 else (f"{e}+" if lo == 1 else f"{e}{{{lo},}}")
    if hi == lo:
        return e if lo == 1 else f"{e}{{{lo}}}"
    if (lo, hi) == (0, 1):
        return f"{e}?"
    return f"{e}{{{lo},{hi}}}"


def digits_range(a: str, b: str) -> str:
    """GBNF for every digit string of length len(a) from ``a`` to ``b`` (inclusive)."""
    if a == b:
        return f'"{a}"'
    if len(a) == 1:
        return f"[{a}-{b}]"
    if a[0] == b[0]:
        return f'"{a[0]}" {paren(digits_range(a[1:], b[1:]))}'
    n = len(a) - 1
    alts = []
    lo, hi = int(a[0]), int(b[0])
    if a[1:] != "0" * n:
        alts.append(f'"{a[0]}" {paren(digits_range(a[1:], "9" * n))}')
        lo += 1
    tail = None
    if b[1:] != "9" * n:
        tail = f'"{b[0]}" {paren(digits_range("0" * n, b[1:]))}'
        hi -= 1
    if lo <= hi:
        first = f"[{lo}-{hi}]" if lo != hi else f'"{lo}"'
        alts.append(f"{first} {repeat('[0-9]', n, n)}")
    if tail:
        alts.append(tail)
    return " | ".join(alts)


def nonneg_range(lo: int, hi: int | None) -> str:
    """GBNF for the integers lo..hi (hi None: no upper bound but INT_DIGITS), lo >= 0."""
    alts = []
    top = len(str(hi)) if hi is not None else max(len(str(lo)), INT_DIGITS)
    for n in range(len(str(lo)), top + 1):
        a = max(lo, 10 ** (n - 1) if n > 1 else 0)
        b = 10**n - 1 if hi is None else min(hi, 10**n - 1)
        if a > b:
            continue
        if hi is None and a == 10 ** (n - 1) and n > 1:
            # every longer number too, in one alternative
            alts.append(f"[1-9] {repeat('[0-9]', n - 1, top - 1)}")
            break
        alts.append(paren(digits_range(str(a), str(b))))
    return " | ".join(alts)


def integer_range(lo: int | None, hi: int | None) -> str:
    """GBNF for the integers in [lo, hi]; None is unbounded on that side."""
    if lo is not None and lo >= 0:
        return nonneg_range(lo, hi)
    if hi is not None and hi < 0:
        return f'"-" ({nonneg_range(-hi, None if lo is None else -lo)})'
    neg = f'"-" ({nonneg_range(1, None if lo is None else -lo)})'
    return f"{neg} | {nonneg_range(0, hi)}"
