"""How deep a parsed JSON document nests: the check a transport with a nesting limit
(MQTT's ``max_json_depth``) puts on a request body after its one parse, so a body is
parsed once and still bounded."""

from __future__ import annotations

from typing import Any


def depth_exceeds(doc: Any, limit: int) -> bool:
    """True when containers nest deeper than ``limit`` (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def brackets(raw: bytes | memoryview) -> int:
    """The count of ``[`` and ``{``: a bound on the nesting depth, cheap enough to rule
    out deep nesting for nearly every request before walking the parsed document."""
    data = bytes(raw) if isinstance(raw, memoryview) else raw
    return data.count(b"[") + data.count(b"{")
