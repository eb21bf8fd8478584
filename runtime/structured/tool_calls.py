"""OpenAI tool calls for text models: a plan from ``tools``/``tool_choice`` and the
parse of what the model produced.

A call is the compact JSON object ``{"name": ..., "arguments": {...}}``, enforced by a
grammar built with runtime.structured.schema_grammar: the name is one of the offered
functions and the arguments validate against that function's ``parameters``.

- ``none`` (or no tools): free text, no grammar.
- ``required``: exactly one call to any offered function.
- a named function: one call to that function.
- ``auto``: a call or free text. A call is the JSON object, or the same wrapped in
  ``<tool_call>...</tool_call>`` as Hermes/Qwen-style chat templates teach their models;
  text may start with neither ``{`` nor ``<t``, so the first characters decide and a stream
  forwards text at once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from runtime.errors import InvalidInput
from runtime.structured.gbnf import literal, scalar_class
from runtime.structured.schema_grammar import GrammarBuilder

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 128
OPEN_TAG, CLOSE_TAG = "<tool_call>", "</tool_call>"
Mode = Literal["none", "auto", "required"]

# What a model whose chat template knows nothing of tools is told (a system message).
INSTRUCTIONS = (
    "You can call these functions:\n{tools}\n"
    'To call one, answer with only a JSON object {{"name": <function name>, '
    '"arguments": <arguments object>}} and nothing else.'
)


@dataclass(frozen=True)
class Function:
    name: str
    description: str
    parameters: Mapping[str, Any]

    def as_tool(self) -> dict[str, Any]:
        """The OpenAI tool object, as chat templates expect it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True)
class ToolPlan:
    """What one request asked for: the mode, the functions, and the grammar to enforce."""

    mode: Mode
    functions: tuple[Function, ...]
    grammar: str | None

    def could_be_call(self, text: str) -> bool:
        """Whether output starting with ``text`` is (or may still become) a call."""
        if self.mode == "required":
            return True
        if self.mode == "none":
            return False
        head = text.lstrip()
        return head[:1] in ("", "{") or head.startswith(OPEN_TAG) or OPEN_TAG.startswith(head)

    def parse(self, text: str) -> dict[str, Any] | None:
        """The OpenAI ``tool_calls`` item for a complete call, or None when ``text`` is not one."""
        if self.mode == "none":
            return None
        text = text.strip()
        if text.startswith(OPEN_TAG) and text.endswith(CLOSE_TAG):
            text = text[len(OPEN_TAG) : -len(CLOSE_TAG)]
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict) or set(doc) != {"name", "arguments"}:
            return None
        if doc["name"] not in {f.name for f in self.functions}:
            return None
        return {
            "id": "call_" + uuid.uuid4().hex[:24],
            "type": "function",
            "function": {
                "name": doc["name"],
                "arguments": json.dumps(doc["arguments"], ensure_ascii=False),
            },
        }

    def tools(self) -> tuple[dict[str, Any], ...]:
        return tuple(f.as_tool() for f in self.functions)

    def instructions(self) -> str:
        """The system text for templates without tool support."""
        return INSTRUCTIONS.format(tools=json.dumps([f.as_tool() for f in self.functions]))


def read_tools(tools: Sequence[Any]) -> tuple[Function, ...]:
    """Check OpenAI ``tools``; InvalidInput names the bad one."""
    if len(tools) > MAX_TOOLS:
        raise InvalidInput(f"tools: at most {MAX_TOOLS} tools")
    out: list[Function] = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, Mapping) or t.get("type") != "function":
            raise InvalidInput(f'{where}: only {{"type": "function", "function": {{...}}}} tools')
        fn = t.get("function")
        if not isinstance(fn, Mapping):
            raise InvalidInput(f"{where}.function: an object with name and parameters")
        name = fn.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput(f"{where}.function.name: 1-64 letters, digits, _ or -")
        if any(f.name == name for f in out):
            raise InvalidInput(f"{where}.function.name: {name!r} is offered twice")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, Mapping):
            raise InvalidInput(f"{where}.function.parameters: a JSON Schema object")
        description = fn.get("description") or ""
        if not isinstance(description, str):
            raise InvalidInput(f"{where}.function.description: a string")
        out.append(Function(name, description, params))
    return tuple(out)


def plan(tools: Sequence[Any] | None, choice: Any) -> ToolPlan | None:
    """The plan for ``tools`` and ``tool_choice``; None when the request has no tools."""
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidInput("tool_choice: the request offers no tools")
        return None
    functions = read_tools(tools)
    mode: Mode
    if choice is None or choice == "auto":
        mode, chosen = "auto", functions
    elif choice == "none":
        _grammar(functions, functions, "required")  # bad parameters are a 400 all the same
        return ToolPlan("none", functions, None)
    elif choice == "required":
        mode, chosen = "required", functions
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, Mapping):
            raise InvalidInput('tool_choice.function: an object {"name": ...}')
        name = function.get("name")
        chosen = tuple(f for f in functions if f.name == name)
        if not chosen:
            raise InvalidInput(f"tool_choice: no tool named {name!r} is offered")
        mode = "required"
    else:
        raise InvalidInput('tool_choice: "none", "auto", "required" or {"type": "function", ...}')
    return ToolPlan(mode, functions, _grammar(chosen, functions, mode))


def _grammar(chosen: Sequence[Function], functions: Sequence[Function], mode: Mode) -> str:
    b = GrammarBuilder()
    calls = []
    for f in chosen:
        i = functions.index(f)
        args = b.value(f.parameters, f"tools[{i}].function.parameters")
        head = literal('{"name":' + json.dumps(f.name) + ',"arguments":')
        calls.append(b.rule("call", f'{head} {args} "}}"'))
    root = " | ".join(calls)
    if mode == "auto":
        call = b.rule("calls", root)
        tagged = f'{literal(OPEN_TAG)} "\\n"? {call} "\\n"? {literal(CLOSE_TAG)}'
        # free text opens with neither "{" nor "<t" (those start a call); no NUL in text
        any_char = f"{scalar_class(below=1)}*"
        first, after_lt = scalar_class("{<", below=1), scalar_class("t", below=1)
        text = b.rule("text", f'{first} {any_char} | "<" ({after_lt} {any_char})?')
        root = f"{call} | {tagged} | {text}"
    return b.render(root)
