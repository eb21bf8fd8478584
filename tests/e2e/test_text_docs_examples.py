"""The Python examples in docs/text.md run as written against a real server (only the
address and the model names change), so the documentation stays runnable."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.support.prereq import need_module
from tests.support.text_servers import Server

need_module("llama_cpp")  # every test here runs llama.cpp

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "text.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_its_three_examples() -> None:
    text = "\n".join(BLOCKS)
    assert len(BLOCKS) == 3
    assert "response_format" in text and "tool_call_id" in text and "embeddings.create" in text


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=["schema", "agent-loop", "retrieval"])
def test_example_runs(agent_server: Server, index: int) -> None:
    code = BLOCKS[index].replace("http://127.0.0.1:8080/v1", agent_server.url + "/v1")
    code = code.replace('"manual-embedder"', '"encoder"')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{DOC.name}[{index}]", "exec"), {"__name__": "docs_example"})
    assert out.getvalue().strip()  # every example prints its answer
