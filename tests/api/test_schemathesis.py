"""Schemathesis fuzzes every operation in the served OpenAPI document: never a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.catalog import Store
from runtime.config import Settings
from tests.support.http_server import serving


@pytest.mark.slow
def test_openapi_fuzzing_finds_no_server_error(store: Path, loader: Any, tmp_path: Path) -> None:
    packages = [Store(store).load("part-id-reader"), Store(store).load("echo")]
    st = Path(sys.executable).with_name("schemathesis")
    with serving(packages, loader=loader, settings=Settings(demo=False)) as server:
        result = subprocess.run(
            [str(st), "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "20", "--workers", "1"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "API Operations" in result.stdout and "passed" in result.stdout, result.stdout
