"""Schemathesis fuzzes every operation in the served OpenAPI document: never a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.catalog import Store
from runtime.config import Settings
from runtime.service import InferenceService
from tests.support.http_server import running_server


@pytest.mark.slow
def test_openapi_fuzzing_finds_no_server_error(store: Path, loader: Any, tmp_path: Path) -> None:
    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader)
        await service.add(Store(store).load("part-id-reader"))
        await service.add(Store(store).load("echo"))
        return create_app(service, settings=Settings(demo=False), context=ServerContext()), service

    async def close(service: InferenceService) -> None:
        await service.close()

    st = Path(sys.executable).with_name("schemathesis")
    with running_server(build, close=close) as server:
        result = subprocess.run(
            [str(st), "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "20", "--workers", "1"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "API Operations" in result.stdout and "passed" in result.stdout, result.stdout
