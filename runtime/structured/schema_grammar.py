"""JSON Schema -> llama.cpp GBNF, so that every sentence of the grammar *validates*.

Why not llama-cpp-python's ``LlamaGrammar.from_json_schema``: on a random-weight model it
let ``"severity": 21807`` through a schema with ``maximum: 5`` and put a raw control
character inside a string (invalid JSON). This converter is built the other way round:
its grammar describes a *subset* of the values the schema allows, never a superset, so
whatever the model samples parses and validates. The narrowing, documented in
docs/text.md:

- compact JSON (no whitespace between tokens), properties in the schema's order with the
  required ones first, never a property the schema does not name;
- strings never hold a raw control character or an escaped surrogate; they are at most
  ``MAX_STRING`` characters long (less when ``maxLength`` says so);
- values the schema leaves open (``{}``, ``{"type": "object"}``, json_object) nest at most
  ``GENERIC_DEPTH`` levels, with at most ``GENERIC_ITEMS`` entries per container and
  ``GENERIC_STRING`` characters per string;
- an integer's ``minimum``/``maximum`` (and the exclusive forms) are exact, digit by digit;
  a ``number`` that has bounds is generated as a whole number inside them; unbounded
  integers have at most ``INT_DIGITS`` digits, fractions at most ``FRAC_DIGITS``;
- arrays hold at most ``MAX_ITEMS`` items;
- ``$ref`` (local: ``#``, ``#/$defs/...``, ``#/definitions/...``) is unrolled up to
  ``MAX_DEPTH`` levels; past it, branches that may be left out (optional properties, arrays
  allowed to be empty, one of several ``anyOf`` branches) are left out. A schema that needs
  more depth is refused.

Every keyword that would change which values are valid and that this converter cannot
honour (``pattern``, ``format``, ``multipleOf``, ``oneOf``, ``not``, ``patternProperties``
...) raises InvalidInput naming the keyword and where it is: never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runtime.errors import InvalidInput
from runtime.structured.gbnf import (
    INT_DIGITS,
    integer_range,
    json_literal,
    literal,
    repeat,
    scalar_class,
)
from runtime.structured.keywords import (
    ANNOTATIONS,
    SUPPORTED,
    TYPES,
    count,
    integer_bounds,
    json_type,
    pointer,
)
from runtime.structured.limits import Deadline, SchemaSize

MAX_DEPTH = 12
MAX_STRING = 512
MAX_ITEMS = 64
MAX_PROPERTIES = 128
MAX_ENUM = 256
MAX_RULES = 2048
MAX_GRAMMAR_BYTES = 512 * 1024
FRAC_DIGITS = 15
# Values a schema leaves open ({"type": "object"}, json_object) are bounded too, so that
# what a model writes always ends: nesting, entries per container, string lengths.
GENERIC_DEPTH = 2
GENERIC_ITEMS = 8
GENERIC_STRING = 64
GENERIC_KEY = 32

# Fixed rules every grammar may use. ``char`` is one JSON string character: a Unicode
# scalar value but a quote, a backslash or a control character, or an escape (no escaped
# surrogates, whose pairs would decode into one character and break minLength).
_BASE_RULES = {
    "hex": "[0-9a-fA-F]",
    "char": scalar_class('"\\', below=0x20) + r' | "\\" (["\\/bfnrt] | "u" uhex)',
    "uhex": "[0-9a-cA-CefEF] hex hex hex | [dD] [0-7] hex hex",
    "str": f'"\\"" char{{0,{GENERIC_STRING}}} "\\""',
    "key": f'"\\"" char{{0,{GENERIC_KEY}}} "\\""',
    "num": f'"-"? ("0" | [1-9] [0-9]{{0,{INT_DIGITS - 1}}}) ("." [0-9]{{1,{FRAC_DIGITS}}})?',
    "bool": '"true" | "false"',
    "scalar": 'str | num | bool | "null"',
}


class _TooDeep(Exception):
    """Raised past MAX_DEPTH; caught where a branch may be left out."""


class GrammarBuilder:
    """Collects rules for one grammar; ``value`` adds a schema, ``render`` writes it out.

    One builder serves one request: ``size`` (runtime.structured.limits) bounds every
    schema it is given together, checked before any is compiled; ``deadline`` bounds the
    time it works; the grammar's bytes are counted as rules are added, so a grammar past
    ``MAX_GRAMMAR_BYTES`` stops being built at that point, not after."""

    def __init__(self, *, size: SchemaSize | None = None, deadline: Deadline | None = None) -> None:
        self.rules: dict[str, str] = {}
        self.size = size or SchemaSize()
        self.deadline = deadline or Deadline()
        self._bytes = sum(len(k) + len(v) + 6 for k, v in _BASE_RULES.items())
        self._names: dict[str, str] = {}
        self._memo: dict[tuple[int, int], str | _TooDeep] = {}
        self._root: Any = None
        self._where = ""
        self._keep: list[Any] = []  # schemas memoized by id() stay alive while we build

    # -- public ------------------------------------------------------------------------

    def value(self, schema: Any, where: str) -> str:
        """The rule name for values of ``schema``; InvalidInput(``where``: ...) if it cannot."""
        self._root, self._where = schema, where
        self.size.take(schema, where)
        try:
            return self._value(schema, "", 0)
        except _TooDeep:
            raise self._error(
                "", f"the schema nests deeper than {MAX_DEPTH} levels (a recursive $ref?)"
            ) from None
        except RecursionError:
            raise self._error("", "the schema is too deeply nested") from None

    def generic_object(self) -> str:
        return self._generic(0, object_only=True)

    def render(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in _BASE_RULES.items()]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        text = "\n".join(lines) + "\n"
        if len(text) > MAX_GRAMMAR_BYTES:
            raise self._too_large()
        return text

    def _too_large(self) -> InvalidInput:
        return InvalidInput(
            f"{self._where}: the schema is too large to enforce (its grammar would pass "
            f"{MAX_GRAMMAR_BYTES} bytes or {MAX_RULES} rules)"
        )

    def rule(self, hint: str, body: str) -> str:
        """A named rule for ``body`` (the same body always gets the same name)."""
        if body in _BASE_RULES.values():
            return next(k for k, v in _BASE_RULES.items() if v == body)
        name = self._names.get(body)
        if name is None:
            name = f"{hint}{len(self.rules)}"
            self._bytes += len(name) + len(body) + 6  # "name ::= body\n"
            if len(self.rules) >= MAX_RULES or self._bytes > MAX_GRAMMAR_BYTES:
                raise self._too_large()
            self._names[body] = name
            self.rules[name] = body
        return name

    # -- schemas -----------------------------------------------------------------------

    def _error(self, path: str, message: str) -> InvalidInput:
        return InvalidInput(f"{self._where}: {message} (at {path or '/'})")

    def _value(self, s: Any, path: str, depth: int) -> str:
        self.deadline.check(self._where)
        if depth > MAX_DEPTH:
            raise _TooDeep(path)
        key = (id(s), depth)
        hit = self._memo.get(key)
        if isinstance(hit, _TooDeep):
            raise hit
        if hit is not None:
            return hit
        self._keep.append(s)
        try:
            out = self._build(s, path, depth)
        except _TooDeep as e:
            self._memo[key] = e
            raise
        self._memo[key] = out
        return out

    def _build(self, s: Any, path: str, depth: int) -> str:
        if s is True:
            return self._generic(depth)
        if s is False:
            raise self._error(path, "the schema false allows no value")
        if not isinstance(s, Mapping):
            raise self._error(path, "a schema is a JSON object or a boolean")
        for k in s:
            if k not in SUPPORTED and k not in ANNOTATIONS:
                raise self._error(path, f"JSON Schema keyword {k!r} is not supported")
        keys = {k for k in s if k not in ANNOTATIONS}
        if "$ref" in s:
            if keys - {"$ref"}:
                raise self._error(path, "keywords beside $ref are not supported")
            return self._value(self._resolve(s["$ref"], path), path + "/$ref", depth + 1)
        if "allOf" in s:
            sub = s["allOf"]
            if not isinstance(sub, list) or len(sub) != 1 or keys - {"allOf"}:
                raise self._error(path, "allOf is supported with exactly one schema only")
            return self._value(sub[0], path + "/allOf/0", depth)
        if "anyOf" in s:
            return self._any_of(s, keys, path, depth)
        types = self._types(s, path)
        if "const" in s or "enum" in s:
            return self._enum(s, types, path)
        alts = [self._typed(t, s, path, depth) for t in types]
        return alts[0] if len(alts) == 1 else self.rule("alt", " | ".join(alts))

    def _types(self, s: Mapping[str, Any], path: str) -> list[str]:
        t = s.get("type")
        if t is None:
            if {"properties", "required", "additionalProperties"} & s.keys():
                types = ["object"]
            elif {"items", "minItems", "maxItems", "uniqueItems"} & s.keys():
                types = ["array"]
            elif {"minLength", "maxLength"} & s.keys():
                types = ["string"]
            elif {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & s.keys():
                types = ["number"]
            else:
                types = ["any"]
        else:
            types = [t] if isinstance(t, str) else t
            if not isinstance(types, list) or not types:
                raise self._error(path, "type: a type name or a non-empty list of them")
            for name in types:
                if name not in TYPES:
                    raise self._error(path, f"type: unknown type {name!r}")
        if s.get("nullable") is True and "null" not in types and "any" not in types:
            types = [*types, "null"]
        return list(dict.fromkeys(types))

    def _any_of(self, s: Mapping[str, Any], keys: set[str], path: str, depth: int) -> str:
        branches = s["anyOf"]
        if not isinstance(branches, list) or not branches:
            raise self._error(path, "anyOf: a non-empty list of schemas")
        if keys - {"anyOf", "nullable"}:
            raise self._error(path, "keywords beside anyOf are not supported")
        alts = []
        deep: _TooDeep | None = None
        for i, b in enumerate(branches):
            try:
                alts.append(self._value(b, f"{path}/anyOf/{i}", depth))
            except _TooDeep as e:  # leave this branch out; another one will do
                deep = e
        if s.get("nullable") is True:
            alts.append('"null"')
        if not alts:
            assert deep is not None
            raise deep
        return self.rule("any", " | ".join(dict.fromkeys(alts)))

    def _enum(self, s: Mapping[str, Any], types: list[str], path: str) -> str:
        values = [s["const"]] if "const" in s else s["enum"]
        if not isinstance(values, list) or not values:
            raise self._error(path, "enum: a non-empty list of values")
        if len(values) > MAX_ENUM:
            raise self._error(path, f"enum: at most {MAX_ENUM} values")
        if "enum" in s and "const" in s:
            values = [v for v in values if v == s["const"]]
        kept = [v for v in values if "any" in types or json_type(v) in types]
        kept += [v for v in values if "number" in types and json_type(v) == "integer"]
        if not kept:
            raise self._error(path, "no value of enum/const has the schema's type")
        lits = dict.fromkeys(json_literal(v) for v in kept)
        return self.rule("enum", " | ".join(lits))

    def _typed(self, t: str, s: Mapping[str, Any], path: str, depth: int) -> str:
        if t == "null":
            return '"null"'
        if t == "boolean":
            return "bool"
        if t == "string":
            return self._string(s, path)
        if t in ("integer", "number"):
            return self._number(t, s, path)
        if t == "object":
            return self._object(s, path, depth)
        if t == "array":
            return self._array(s, path, depth)
        return self._generic(depth)

    def _count(self, s: Mapping[str, Any], key: str, path: str) -> int | None:
        try:
            return count(s, key)
        except ValueError as e:
            raise self._error(path, str(e)) from None

    def _string(self, s: Mapping[str, Any], path: str) -> str:
        lo = self._count(s, "minLength", path) or 0
        hi = self._count(s, "maxLength", path)
        if hi is not None and hi < lo:
            raise self._error(path, "maxLength is below minLength: no string fits")
        if lo > MAX_STRING:
            raise self._error(path, f"minLength: at most {MAX_STRING}")
        hi = MAX_STRING if hi is None else min(hi, MAX_STRING)
        return self.rule("str", f'"\\"" {repeat("char", lo, hi)} "\\""')

    def _number(self, t: str, s: Mapping[str, Any], path: str) -> str:
        try:
            lo, hi = integer_bounds(s)
        except ValueError as e:
            raise self._error(path, str(e)) from None
        if t == "number" and lo is None and hi is None:
            return "num"
        if lo is not None and hi is not None and lo > hi:
            kind = (
                "integer"
                if t == "integer"
                else "whole number (bounded numbers are generated whole)"
            )
            raise self._error(path, f"minimum/maximum: no {kind} lies within the bounds")
        if lo is None and hi is None:
            return self.rule("int", integer_range(None, None))
        return self.rule("int", integer_range(lo, hi))

    def _object(self, s: Mapping[str, Any], path: str, depth: int) -> str:
        props = s.get("properties", {})
        required = s.get("required", [])
        addl = s.get("additionalProperties", True)
        if not isinstance(props, Mapping):
            raise self._error(path, "properties: an object of schemas")
        if len(props) > MAX_PROPERTIES:
            raise self._error(path, f"properties: at most {MAX_PROPERTIES}")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self._error(path, "required: a list of property names")
        if not isinstance(addl, bool | Mapping):
            raise self._error(path, "additionalProperties: a boolean or a schema")
        if not props and not required:
            if addl is False:
                return '"{}"'
            if addl is True:
                return self._generic(depth, object_only=True)
            value = self._value(addl, path + "/additionalProperties", depth + 1)
            kv = self.rule("kv", f'key ":" {value}')
            more = GENERIC_ITEMS - 1
            return self.rule("obj", f'"{{" ({kv} ("," {kv}){{0,{more}}})? "}}"')
        req: list[str] = []
        opt: list[str] = []
        names = list(dict.fromkeys([*required, *props]))
        must = set(required)  # a set: `in` on the list made this quadratic in its length
        for name in names:
            sub = props.get(name)
            where = f"{path}/properties/{pointer(name)}"
            if sub is None:  # required but not described: additionalProperties decides
                if addl is False:
                    raise self._error(path, f"required property {name!r} is not allowed")
                sub, where = addl, path + "/additionalProperties"
            try:
                value = self._value(sub, where, depth + 1)
            except _TooDeep:
                if name in must:
                    raise
                continue
            kv = f"{literal(json.dumps(name, ensure_ascii=True) + ':')} {value}"
            (req if name in must else opt).append(kv)
        if not req and not opt:
            return '"{}"'
        if req:
            body = ' "," '.join(req)
            body += "".join(f' ("," {o})?' for o in opt)
            return self.rule("obj", f'"{{" {body} "}}"')
        # No required property: any subset of the optional ones, in order, comma-separated.
        suffix: str | None = None
        firsts = []
        for o in reversed(opt):
            firsts.append(f"{o} {suffix}" if suffix else o)
            tail = f'("," {o})?'
            suffix = self.rule("opt", f"{tail} {suffix}" if suffix else tail)
        return self.rule("obj", f'"{{" ({" | ".join(reversed(firsts))})? "}}"')

    def _array(self, s: Mapping[str, Any], path: str, depth: int) -> str:
        if "prefixItems" in s or isinstance(s.get("items"), list):
            raise self._error(path, "items: tuple (list) form is not supported")
        lo = self._count(s, "minItems", path) or 0
        hi = self._count(s, "maxItems", path)
        if hi is not None and hi < lo:
            raise self._error(path, "maxItems is below minItems: no array fits")
        if lo > MAX_ITEMS:
            raise self._error(path, f"minItems: at most {MAX_ITEMS}")
        if s.get("uniqueItems") is True and (hi is None or hi > 1):
            raise self._error(path, "uniqueItems: true is not supported (unless maxItems <= 1)")
        hi = MAX_ITEMS if hi is None else min(hi, MAX_ITEMS)
        if hi == 0:
            return '"[]"'
        try:
            item = self._value(s.get("items", True), path + "/items", depth + 1)
        except _TooDeep:
            if lo == 0:
                return '"[]"'
            raise
        rest = repeat(f'"," {item}', max(lo - 1, 0), hi - 1)
        inner = f"{item} {rest}" if hi > 1 else item
        body = f'"[" {inner} "]"' if lo > 0 else f'"[" ({inner})? "]"'
        return self.rule("arr", body)

    def _generic(self, depth: int, object_only: bool = False) -> str:
        """Any JSON value (or object), nested at most GENERIC_DEPTH more levels."""
        levels = min(GENERIC_DEPTH, MAX_DEPTH - depth)
        value = "scalar"
        obj = '"{}"'
        more = GENERIC_ITEMS - 1
        for _ in range(max(levels, 0)):
            kv = self.rule("gkv", f'key ":" {value}')
            obj = self.rule("gobj", f'"{{" ({kv} ("," {kv}){{0,{more}}})? "}}"')
            arr = self.rule("garr", f'"[" ({value} ("," {value}){{0,{more}}})? "]"')
            value = self.rule("gval", f"scalar | {obj} | {arr}")
        return obj if object_only else value

    def _resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self._error(path, f"$ref {ref!r}: only local references (#/...) are supported")
        node = self._root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise self._error(path, f"$ref {ref!r} points at nothing")
            node = node[part]
        return node


def schema_grammar(
    schema: Any, where: str = "response_format", *, deadline: Deadline | None = None
) -> str:
    """The GBNF grammar for ``schema``; InvalidInput names ``where`` and the keyword, or
    the limit (runtime.structured.limits) the schema went past."""
    b = GrammarBuilder(deadline=deadline)
    return b.render(b.value(schema, where))


def json_object_grammar() -> str:
    """Any JSON object (``response_format: {"type": "json_object"}``)."""
    b = GrammarBuilder()
    return b.render(b.generic_object())
