"""JSON Schema -> GBNF: exact integer ranges, refused keywords, and random schemas whose
output from a random-weight GGUF always parses and validates (jsonschema), on a plain
vocabulary and on one whose byte-fallback tokens are sampled (they spell invalid UTF-8
unless the backend's filter keeps them out: issue 25, item 3)."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runtime.backends.base import GenerationRequest
from runtime.backends.llama import LlamaBackend
from runtime.errors import InvalidInput
from runtime.structured.gbnf import integer_range
from runtime.structured.schema_grammar import MAX_DEPTH, json_object_grammar, schema_grammar
from tests.support.prereq import need_module

need_module("llama_cpp")  # every test here runs llama.cpp


def _regex(gbnf: str) -> str:
    """The integer-range subset of GBNF ("x", [a-b], {m,n}, groups, |) as a Python regex."""
    out = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), gbnf)
    return out.replace(" ", "")


@settings(max_examples=300, deadline=None)
@given(
    lo=st.one_of(st.none(), st.integers(-12_000, 12_000)),
    span=st.one_of(st.none(), st.integers(0, 30_000)),
)
def test_integer_ranges_are_exact(lo: int | None, span: int | None) -> None:
    hi = None if span is None else (lo if lo is not None else -15_000) + span
    pattern = re.compile(_regex(integer_range(lo, hi)))
    window_lo = (lo if lo is not None else (hi or 0)) - 1_200
    window_hi = (hi if hi is not None else (lo or 0)) + 1_200
    for x in [*range(window_lo, window_hi, 7), lo, hi, 0, -1, 10**17, -(10**17)]:
        if x is None:
            continue
        inside = (lo is None or x >= lo) and (hi is None or x <= hi)
        assert bool(pattern.fullmatch(str(x))) == inside, (lo, hi, x)
    assert not pattern.fullmatch("-0") and not pattern.fullmatch("007")


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "string", "pattern": "^a+$"}, "'pattern'"),
        ({"type": "string", "format": "date-time"}, "'format'"),
        ({"type": "number", "multipleOf": 3}, "'multipleOf'"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "'oneOf'"),
        ({"type": "object", "patternProperties": {"a": {}}}, "'patternProperties'"),
        ({"not": {"type": "null"}}, "'not'"),
        ({"type": "array", "items": [{"type": "string"}]}, "tuple"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "minimum/maximum"),
        ({"type": "number", "minimum": 0.2, "maximum": 0.8}, "minimum/maximum"),
        ({"type": "strin"}, "unknown type"),
        ({"$ref": "https://example.com/s.json"}, "only local references"),
        ({"$ref": "#/$defs/missing"}, "points at nothing"),
        ({"type": "string", "maxLength": -1}, "maxLength"),
        (False, "allows no value"),
    ],
)
def test_unsupported_or_broken_schemas_name_the_keyword(schema: Any, keyword: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(keyword)) as e:
        schema_grammar(schema)
    assert e.value.message.startswith("response_format: ")


def test_recursion_past_the_depth_limit_is_refused_unless_it_can_stop() -> None:
    must_recurse = {
        "type": "object",
        "properties": {"child": {"$ref": "#"}},
        "required": ["child"],
    }
    with pytest.raises(InvalidInput, match=f"deeper than {MAX_DEPTH} levels"):
        schema_grammar(must_recurse)
    may_recurse = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 4},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name"],
            }
        },
        "$ref": "#/$defs/node",
    }
    grammar = schema_grammar(may_recurse)
    assert grammar.count("::=") < 200  # unrolled levels share rules: the grammar stays small


# -- the real model ---------------------------------------------------------------------

_ENUMS = st.lists(
    st.one_of(st.text(max_size=5), st.integers(-5, 5), st.none()),
    min_size=1,
    max_size=4,
    unique_by=lambda v: json.dumps(v),
)
_LEAF = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(
        lambda lo, n: {"type": "string", "minLength": lo, "maxLength": lo + n},
        st.integers(0, 3),
        st.integers(0, 12),
    ),
    st.builds(
        lambda lo, hi: (
            {k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None}
            | {"type": "integer"}
        ),
        st.one_of(st.none(), st.integers(-1000, 1000)),
        st.one_of(st.none(), st.integers(1000, 100_000)),
    ),
    st.builds(
        lambda ex: {"type": "number", "exclusiveMinimum": ex, "maximum": ex + 10},
        st.floats(-50, 50, allow_nan=False),
    ),
    st.just({"type": "number"}),
    st.builds(
        lambda vs: {"enum": vs},
        st.lists(
            st.one_of(st.text(max_size=5), st.integers(-5, 5), st.none()),
            min_size=1,
            max_size=4,
            unique_by=lambda v: json.dumps(v),
        ),
    ),
    st.builds(lambda v: {"const": v}, st.text(max_size=6)),
)
_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)


def _object(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    def build(props: dict[str, Any], required: list[bool], closed: bool) -> dict[str, Any]:
        names = list(props)
        req = [n for n, r in zip(names, required, strict=False) if r]
        out: dict[str, Any] = {"type": "object", "properties": props, "required": req}
        if closed:
            out["additionalProperties"] = False
        return out

    return st.builds(
        build,
        st.dictionaries(_NAMES, children, max_size=4),
        st.lists(st.booleans(), min_size=4, max_size=4),
        st.booleans(),
    )


def _array(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda items, lo, n: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + n},
        children,
        st.integers(0, 2),
        st.integers(0, 2),
    )


SCHEMAS = st.recursive(
    _LEAF,
    lambda children: st.one_of(
        _object(children),
        _array(children),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
        st.builds(lambda t: {**t, "type": [t["type"], "null"]}, _object(children)),
    ),
    max_leaves=8,
)


def _worst_chars(s: Any) -> int:
    """The longest text the grammar allows for ``s`` (a token is at least one character),
    so a test can keep to schemas whose every answer fits in max_tokens."""
    if "anyOf" in s:
        return max(_worst_chars(b) for b in s["anyOf"])
    if "enum" in s or "const" in s:
        values = s.get("enum", [s.get("const")])
        return max(len(json.dumps(v, separators=(",", ":"))) for v in values)
    types = s["type"] if isinstance(s["type"], list) else [s["type"]]
    worst = 0
    for t in types:
        if t == "object":
            props = s.get("properties", {})
            worst = max(worst, 2 + sum(len(json.dumps(k)) + 2 + _worst_chars(v)
                                       for k, v in props.items()))  # fmt: skip
        elif t == "array":
            worst = max(worst, 2 + s["maxItems"] * (_worst_chars(s["items"]) + 1))
        elif t == "string":
            worst = max(worst, 2 + 6 * s["maxLength"])  # \uXXXX is six characters
        else:
            worst = max(worst, 40)  # numbers, booleans, null
    return worst


MAX_TOKENS = 2000  # the tiny model's context is 2048


def _generate(tiny: LlamaBackend, grammar: str, seed: int, max_tokens: int = 1500) -> str:
    request = GenerationRequest(prompt="report", max_tokens=max_tokens, seed=seed, grammar=grammar)
    chunks = list(tiny.generate(request))
    assert chunks[-1].finish_reason == "stop", "the grammar must end before max_tokens"
    return "".join(c.text for c in chunks)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(schema=SCHEMAS, seed=st.integers(0, 2**31))
def test_random_schemas_always_validate(each_tiny: LlamaBackend, schema: Any, seed: int) -> None:
    assume(_worst_chars(schema) < MAX_TOKENS - 10)
    text = _generate(each_tiny, schema_grammar(schema), seed, MAX_TOKENS)
    jsonschema.validate(json.loads(text), schema)


def test_byte_fallback_tokens_never_spell_invalid_utf8(tiny_bytes: LlamaBackend) -> None:
    """The issue's reproduction: at temperature 1.0 under maxLength 12, strings of 18
    characters holding U+FFFD runs (overlong and out-of-range byte sequences that
    llama.cpp's grammar read as a few characters and Python as many)."""
    schema = {"type": "string", "maxLength": 12}
    grammar = schema_grammar(schema)
    for seed in range(60):
        request = GenerationRequest(prompt="report", max_tokens=200, seed=seed, temperature=1.0,
                                    grammar=grammar)  # fmt: skip
        chunks = list(tiny_bytes.generate(request))
        text = "".join(c.text for c in chunks)
        assert chunks[-1].finish_reason == "stop", text
        jsonschema.validate(json.loads(text), schema)


def test_the_two_failures_seen_with_llama_cpp_python_do_not_happen(tiny: LlamaBackend) -> None:
    """from_json_schema let "severity": 21807 through maximum 5, and raw control
    characters into strings; here every sample stays inside the bounds and is JSON."""
    schema = {
        "type": "object",
        "properties": {
            "severity": {"type": "integer", "minimum": 1, "maximum": 5},
            "note": {"type": "string"},
        },
        "required": ["severity", "note"],
    }
    grammar = schema_grammar(schema)
    for seed in range(12):
        text = _generate(tiny, grammar, seed, MAX_TOKENS)
        assert not any(ord(c) < 0x20 for c in text)
        doc = json.loads(text)  # strict: a raw control character would fail here
        jsonschema.validate(doc, schema)


def test_json_object_always_parses_to_an_object(each_tiny: LlamaBackend) -> None:
    grammar = json_object_grammar()
    for seed in range(8):
        assert isinstance(json.loads(_generate(each_tiny, grammar, seed, MAX_TOKENS)), dict)


def test_a_grammar_llama_cpp_cannot_parse_is_a_400_not_a_crash(tiny: LlamaBackend) -> None:
    with pytest.raises(InvalidInput, match="could not parse the grammar"):
        list(tiny.generate(GenerationRequest(prompt="x", grammar="root ::= (")))
    assert list(tiny.generate(GenerationRequest(prompt="x", max_tokens=2)))  # still serves


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(params=_object(SCHEMAS), seed=st.integers(0, 2**31), named=st.booleans())
def test_random_tool_parameters_always_give_valid_calls(
    each_tiny: LlamaBackend, params: dict[str, Any], seed: int, named: bool
) -> None:
    from runtime.structured.tool_calls import plan

    assume(_worst_chars(params) < MAX_TOKENS - 40)
    other = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    tools = [
        {"type": "function", "function": {"name": "other", "parameters": other}},
        {"type": "function", "function": {"name": "act", "parameters": params}},
    ]
    choice = {"type": "function", "function": {"name": "act"}} if named else "required"
    tool_plan = plan(tools, choice)
    assert tool_plan is not None and tool_plan.grammar is not None
    call = tool_plan.parse(_generate(each_tiny, tool_plan.grammar, seed, MAX_TOKENS))
    assert call is not None
    name = call["function"]["name"]
    assert name == "act" or not named
    schema = params if name == "act" else other
    jsonschema.validate(json.loads(call["function"]["arguments"]), schema)
