"""Grammar character classes are over Unicode scalar values only (issue 25, item 3): no
negated class (llama.cpp matches ``[^"]`` against surrogates and code points past
U+10FFFF, which no valid UTF-8 spells), and exactly the scalars the rule means."""

from __future__ import annotations

import re

import pytest

from runtime.structured.gbnf import scalar_class
from runtime.structured.schema_grammar import json_object_grammar, schema_grammar
from runtime.structured.tool_calls import plan

_ESC = re.compile(r"\\(?:x([0-9A-F]{2})|u([0-9A-F]{4})|U([0-9A-F]{8}))")


def _ranges(cls: str) -> list[tuple[int, int]]:
    assert cls.startswith("[") and cls.endswith("]") and not cls.startswith("[^"), cls
    points = [int(next(g for g in m.groups() if g), 16) for m in _ESC.finditer(cls)]
    body = _ESC.sub("E", cls[1:-1])
    assert set(body) <= {"E", "-"}, cls  # nothing but escapes and ranges
    out, i, k = [], 0, 0
    while i < len(body):
        if body[i : i + 3] == "E-E":
            out.append((points[k], points[k + 1]))
            i, k = i + 3, k + 2
        else:
            out.append((points[k], points[k]))
            i, k = i + 1, k + 1
    return out


def _inside(cp: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


@pytest.mark.parametrize(("exclude", "below"), [('"\\', 0x20), ("{<", 1), ("t", 1), ("", 0)])
def test_a_class_is_every_scalar_but_what_it_excludes(exclude: str, below: int) -> None:
    ranges = _ranges(scalar_class(exclude, below))
    probes = [*range(0x100), 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000, 0xFFFD, 0xFFFF,
              0x10000, 0x1F600, 0x10FFFF, 0x110000, 0x1FFFFF]  # fmt: skip
    for cp in probes:
        scalar = cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF
        want = scalar and cp >= below and chr(cp) not in exclude
        assert _inside(cp, ranges) == want, hex(cp)


def test_no_grammar_holds_a_negated_class() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    auto = plan(tools, "auto")
    assert auto is not None and auto.grammar is not None
    schema = {"type": "object", "properties": {"s": {"type": "string"}, "any": {}}}
    for grammar in (schema_grammar(schema), json_object_grammar(), auto.grammar):
        assert "[^" not in grammar
        for cls in re.findall(r"\[(?:\\.|[^\]\\])*\]", grammar):
            if "\\x" in cls or "\\u" in cls:
                assert not _inside(0xD800, _ranges(cls)) and not _inside(0x110000, _ranges(cls))
