"""What one request may make the grammar compiler do (issue 25, item 1): the schema's size
is checked before any work, compilation is linear, a time budget stops it from the
inside, and the grammar's byte cap is checked while it is built. Every refusal names the
limit it hit."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import pytest

from runtime.errors import InvalidInput
from runtime.structured.limits import MAX_SCHEMA_CHARS, MAX_SCHEMA_NODES, Deadline
from runtime.structured.schema_grammar import MAX_GRAMMAR_BYTES, schema_grammar
from runtime.structured.tool_calls import plan


def _required(n: int) -> dict[str, Any]:
    return {"type": "object", "required": [f"field_{i:06d}" for i in range(n)]}


def test_forty_thousand_required_names_are_refused_before_any_work() -> None:
    schema = _required(40_000)  # 389 KB as JSON: it held the event loop for 20 s
    assert len(json.dumps(schema)) > 380_000
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match=r"more than \d+ .* \(the limit for one request\)"):
        schema_grammar(schema)
    assert time.perf_counter() - t0 < 0.5


def test_many_small_values_count_against_the_value_limit() -> None:
    schema = {"enum": list(range(MAX_SCHEMA_NODES))}
    with pytest.raises(InvalidInput, match=f"more than {MAX_SCHEMA_NODES} keys and values"):
        schema_grammar(schema)


def test_a_thirteen_megabyte_schema_costs_what_its_first_values_cost() -> None:
    props = {f"p{i:07d}": {"type": "string", "description": "x" * 40} for i in range(180_000)}
    schema = {"type": "object", "properties": props}
    assert len(json.dumps(schema)) > 12_000_000
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match="the limit for one request"):
        schema_grammar(schema)
    assert time.perf_counter() - t0 < 0.5


def test_long_strings_count_against_the_character_limit() -> None:
    schema = {"type": "string", "description": "x" * (MAX_SCHEMA_CHARS + 1)}
    with pytest.raises(InvalidInput, match=f"more than {MAX_SCHEMA_CHARS} characters"):
        schema_grammar(schema)


def _seconds(n: int) -> float:
    schema = _required(n)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        schema_grammar(schema)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_compilation_is_linear_in_the_number_of_required_names() -> None:
    # `name in required` on the list made 8,000 names cost 40x what 1,000 cost, not 8x.
    small, large = _seconds(1_000), _seconds(8_000)
    assert large < 20 * small, f"1,000 names: {small:.4f} s, 8,000 names: {large:.4f} s"


def test_the_time_budget_refuses_naming_itself() -> None:
    with pytest.raises(InvalidInput, match=r"took longer than 0\.001 s to compile") as e:
        slow = Deadline(0.001)
        time.sleep(0.002)
        schema_grammar(_required(100), deadline=slow)
    assert e.value.message.startswith("response_format: ")


def test_the_grammar_cap_stops_the_build_when_it_is_reached() -> None:
    # 500 integers, each in a range that takes 1.3 KB of grammar to spell exactly: a
    # schema of 2,000 values whose grammar would pass the cap.
    objects = {
        f"o{j}": {
            "type": "object",
            "properties": {
                f"n{i}": {"type": "integer", "minimum": -(10**17) + i, "maximum": 10**17 - j}
                for i in range(125)
            },
        }
        for j in range(4)
    }
    schema = {"type": "object", "properties": objects}
    with pytest.raises(InvalidInput, match=f"would pass {MAX_GRAMMAR_BYTES} bytes"):
        schema_grammar(schema)


def test_every_tool_counts_against_one_budget() -> None:
    params = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(60)}}
    tools = [
        {"type": "function", "function": {"name": f"f{i}", "parameters": params}}
        for i in range(128)
    ]  # 128 x 182 values: each tool is small, together they are past the limit
    with pytest.raises(InvalidInput, match=r"tools\[\d+\]\.function\.parameters: .* more than"):
        plan(tools, "required")
