"""Schemathesis fuzzes the OpenAI operations of the served OpenAPI document, with a real
GGUF model loaded: never a server error, whatever the body."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.prereq import need_module
from tests.support.text_servers import Server

need_module("llama_cpp")  # every test here runs llama.cpp


@pytest.mark.slow
def test_openai_routes_never_answer_5xx(text_server: Server, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(st), "run", f"{text_server.url}/openapi.json", "--checks", "not_a_server_error",
         "--include-path-regex", "^/v1/", "--max-examples", "10", "--workers", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout, result.stdout
