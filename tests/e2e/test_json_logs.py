"""Under systemd (JSON logs) every line the daemon writes is one clean JSON object: no
uvicorn colour copies, no ANSI codes, and uvicorn's loggers named for what they carry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package


@pytest.mark.slow
def test_json_log_lines_are_clean(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--config", str(config)],
        env={**{k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
             "JOURNAL_STREAM": "8:1234"},  # what systemd sets for a journal-bound service
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        daemon_proc.wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    loggers = {doc["logger"] for doc in lines}
    assert "http.server" in loggers  # uvicorn's start-up lines, renamed
    assert not {"uvicorn", "uvicorn.error", "uvicorn.access"} & loggers
    for doc in lines:
        assert "color_message" not in doc
        assert "\x1b[" not in json.dumps(doc)
