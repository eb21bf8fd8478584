"""`headframe serve` as a real process serving a GGUF a user added with `models add`,
answered by the openai SDK: the whole text path as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support import daemon_proc
from tests.support.gguf_models import write_llama_gguf
from tests.support.mosquitto import free_port
from tests.support.prereq import need_module

need_module("llama_cpp")  # every test here runs llama.cpp

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    store = tmp_path / "store"
    gguf = write_llama_gguf(tmp_path / "shift-notes.gguf", size="tiny", precision="q8_0")
    add = subprocess.run(
        [sys.executable, "-m", "runtime", "models", "add", str(gguf), "--app", "shift-notes",
         "--store", str(store)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    port = free_port()
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port))
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        yield url
    finally:
        daemon_proc.stop(proc)


def test_a_gguf_added_by_the_user_is_served_over_the_openai_api(daemon: str) -> None:
    client = openai.OpenAI(base_url=daemon + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["shift-notes"]
    messages = [{"role": "user", "content": "line 3 status"}]
    r = client.chat.completions.create(model="shift-notes", messages=messages, max_tokens=8, seed=2)  # type: ignore[arg-type]
    assert r.usage is not None and r.usage.completion_tokens == 8
    streamed = client.chat.completions.create(
        model="shift-notes", messages=messages, max_tokens=8, seed=2, stream=True,  # type: ignore[arg-type]
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == r.choices[0].message.content
    status = httpx.get(daemon + "/status").json()
    app = next(a for a in status["applications"] if a["app"] == "shift-notes")
    assert (app["backend"], app["format"]) == ("llama", "gguf")
