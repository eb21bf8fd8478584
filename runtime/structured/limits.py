"""What one request may ask the grammar compiler to do: size limits checked before any
work, and a time budget checked while it works.

A schema arrives from anyone who may send a request, so its cost is bounded twice:

- ``SchemaSize.take(schema)`` walks it once, iteratively, and stops at the first value
  past the limits (``MAX_SCHEMA_NODES`` JSON values, ``MAX_SCHEMA_CHARS`` characters of
  strings and keys, in total over one request: a response format, or every tool's
  parameters together). The walk itself is bounded by those limits, so a 13 MB schema
  costs what its first ``MAX_SCHEMA_NODES`` values cost.
- ``Deadline.check()`` is called by the compiler at every schema node it visits; past
  ``COMPILE_BUDGET_S`` the request is refused. A pure-Python compiler can be stopped only
  from the inside, which is what this does: the thread it runs on is free again within
  one node's work.

Both refuse with InvalidInput naming the limit, so a client sees a 400 that says what to
change. The limits are OpenAI's own for Structured Outputs, rounded up (5,000 properties,
120,000 characters of names and values): a schema OpenAI accepts is accepted here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from runtime.errors import InvalidInput

MAX_SCHEMA_NODES = 20_000
MAX_SCHEMA_CHARS = 200_000
COMPILE_BUDGET_S = 2.0
# JSON a request carries for the chat template (tool-call arguments): templates walk it
# recursively, so it nests no deeper than this.
MAX_JSON_DEPTH = 64


def nests_deeper(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``doc``'s objects and arrays nest deeper than ``limit`` levels (walked
    iteratively: no recursion limit of its own)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Mapping | list):
            continue
        if depth > limit:
            return True
        children = node.values() if isinstance(node, Mapping) else node
        stack.extend((child, depth + 1) for child in children)
    return False


class SchemaSize:
    """The size budget of one request's schemas (a response format, or all the tools)."""

    def __init__(self, nodes: int = MAX_SCHEMA_NODES, chars: int = MAX_SCHEMA_CHARS) -> None:
        self.nodes_left = nodes
        self.chars_left = chars
        self._nodes = nodes
        self._chars = chars

    def take(self, schema: Any, where: str) -> None:
        """Count ``schema``'s values and characters against what is left; InvalidInput
        (``where``: ...) at the first one past a limit, before anything else is done."""
        stack = [schema]
        while stack:
            node = stack.pop()
            self.nodes_left -= 1
            if isinstance(node, str):
                self.chars_left -= len(node)
            elif isinstance(node, Mapping):
                self.nodes_left -= len(node)  # the keys
                for key, value in node.items():
                    self.chars_left -= len(key) if isinstance(key, str) else 1
                    stack.append(value)
            elif isinstance(node, list | tuple):
                stack.extend(node)
            if self.nodes_left < 0:
                raise InvalidInput(
                    f"{where}: the schema has more than {self._nodes} keys and values "
                    "(the limit for one request)"
                )
            if self.chars_left < 0:
                raise InvalidInput(
                    f"{where}: the schema holds more than {self._chars} characters of "
                    "names and strings (the limit for one request)"
                )


class Deadline:
    """A monotonic deadline for one compilation; ``None`` budget: no deadline."""

    def __init__(self, budget_s: float | None = COMPILE_BUDGET_S) -> None:
        self.budget_s = budget_s
        self._at = None if budget_s is None else time.monotonic() + budget_s

    def check(self, where: str) -> None:
        if self._at is not None and time.monotonic() > self._at:
            raise InvalidInput(
                f"{where}: the schema took longer than {self.budget_s:g} s to compile "
                "(the limit for one request); simplify it"
            )
