"""Reading JSON Schema keywords: which ones exist, counts and numeric bounds.

Pure helpers for runtime.structured.schema_grammar; a bad value raises ValueError with a
message naming the keyword (the builder adds where it is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Keywords that never change which values are valid.
ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment",
        "deprecated", "readOnly", "writeOnly", "$anchor", "$defs", "definitions",
    }
)  # fmt: skip
SUPPORTED = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "minItems",
        "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "enum", "const", "anyOf", "allOf", "$ref", "nullable",
        "uniqueItems",
    }
)  # fmt: skip
TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


def count(s: Mapping[str, Any], key: str) -> int | None:
    """A non-negative integer keyword (minLength, maxItems ...), None when absent."""
    v = s.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{key}: a non-negative integer")
    return v


def integer_bounds(s: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integer the four bound keywords allow (None: unbounded);
    draft 4's boolean exclusiveMinimum/exclusiveMaximum are understood too."""

    def num(key: str) -> float | None:
        v = s.get(key)
        if v is None or (isinstance(v, bool) and key.startswith("exclusive")):
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{key}: a finite number")
        return v

    lows: list[int] = []
    highs: list[int] = []
    if (m := num("minimum")) is not None:
        excl = s.get("exclusiveMinimum") is True
        lows.append(math.floor(m) + 1 if excl else math.ceil(m))
    if (m := num("maximum")) is not None:
        excl = s.get("exclusiveMaximum") is True
        highs.append(math.ceil(m) - 1 if excl else math.floor(m))
    if (m := num("exclusiveMinimum")) is not None:
        lows.append(math.floor(m) + 1)
    if (m := num("exclusiveMaximum")) is not None:
        highs.append(math.ceil(m) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"
