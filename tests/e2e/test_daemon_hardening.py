"""`headframe serve` as a real process: API tokens rotated with SIGHUP, and one broken
application in the store (a model file removed) that must not take the node down."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from runtime.cli import app as cli
from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package, write_mixed_package
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow  # each starts the daemon as a process

APP = "part-id-reader"


@contextmanager
def _daemon(config: Path, port: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = daemon_proc.start(config)
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        yield url, proc
    finally:
        daemon_proc.stop(proc)


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/v2/models/{APP}", headers=headers, timeout=10).status_code


def test_sighup_rotates_the_api_tokens(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    tokens = tmp_path / "api-tokens"
    tokens.write_text("# rotated weekly\nold-token\n")
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port, f'tokens_file = "{tokens}"\n')
    with _daemon(config, port) as (url, proc):
        assert (_get(url, "old-token"), _get(url, "new-token"), _get(url)) == (200, 401, 401)
        tokens.write_text("new-token\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: _get(url, "new-token") == 200,
            "the new token accepted",
            timeout=60,
            interval=0.2,
        )
        assert _get(url, "old-token") == 401
        # a tokens file that cannot be read keeps the tokens in force
        tokens.unlink()
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None
        assert (_get(url, "new-token"), _get(url, "old-token")) == (200, 401)
        proc.terminate()
        proc.wait(timeout=30)
    err = daemon_proc.log_of(proc)
    assert "keeping the API tokens in force" in err and str(tokens) in err


def _ready(url: str) -> int:
    return httpx.get(f"{url}/v2/health/ready", timeout=10).status_code


def _apps(url: str) -> dict[str, str]:
    doc = httpx.get(f"{url}/status", timeout=10).json()
    return {a["app"]: a["state"] for a in doc["applications"]}


def test_one_broken_application_does_not_poison_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    write_mixed_package(store)
    write_linear_package(store, app="broken", variants=("only",))
    (store / "broken" / "1.0.0" / "variants" / "only" / "model.onnx").unlink()

    # the CLI says what is wrong before the daemon tries
    monkeypatch.setenv("HEADFRAME_PATHS__PROFILES_DIR", str(daemon_proc.REPO / "device_profiles"))
    runner = CliRunner()
    sel = runner.invoke(cli, ["models", "select", "broken", "--store", str(store)])
    assert sel.exit_code == 3, sel.output
    assert "chosen: none" in sel.output and "model.onnx is missing" in sel.output
    show = runner.invoke(cli, ["models", "show", "broken", "--store", str(store)])
    assert show.exit_code == 0 and "BROKEN" in show.stdout
    assert "only cannot load: model.onnx is missing" in show.stderr

    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port)
    with _daemon(config, port) as (url, proc):  # ready: the broken one is left out
        assert _apps(url) == {APP: "serving", "echo": "serving", "broken": "failed"}
        assert httpx.get(f"{url}/v2/models/broken/ready").status_code == 503
        assert httpx.get(f"{url}/v2/models/{APP}/ready").status_code == 200

        # readiness = "all" (applied by SIGHUP): the node waits for every application
        daemon_proc.write_config(tmp_path, store, port, 'readiness = "all"\n')
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: _ready(url) == 503, "not ready with readiness = all", timeout=60, interval=0.2
        )

        # the broken application deleted from the store: SIGHUP forgets it
        shutil.rmtree(store / "broken")
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: _ready(url) == 200,
            "ready once the broken application is gone",
            timeout=60,
            interval=0.2,
        )
        assert _apps(url) == {APP: "serving", "echo": "serving"}
        assert httpx.get(f"{url}/v2/models/broken/ready").status_code == 404
