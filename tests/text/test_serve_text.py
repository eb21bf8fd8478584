"""`headframe serve` as a real process serving a GGUF a user added with `models add`,
answered by the openai SDK: the whole text path as an operator runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gguf_models import write_llama_gguf

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    config = tmp_path / "headframe.toml"
    config.write_text(
        f'demo = false\n[paths]\nstore_dir = "{store}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\nprofiles_dir = "{REPO / "device_profiles"}"\n'
        f"[api]\nport = {port}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--config", str(config)],
        env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"headframe serve exited: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready within 120 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


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
