"""API token scopes (issue 25, item 19) on `headframe serve` as a real process, over real
HTTP on loopback: a token that may infer is not one that may pin. An infer-only token
infers and is refused (403, saying why) on /admin; an admin token pins; the bare tokens
of an existing file keep every right they had; SIGHUP re-reads the scopes; `headframe
models use` sends a token with the admin scope (from the daemon's tokens, or the one
``api.admin_token_file`` names)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow  # each starts the daemon as a process

APP = "part-id-reader"
REPO = Path(__file__).resolve().parents[2]
BODY = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]}


@contextmanager
def _daemon(
    tmp_path: Path, tokens_text: str
) -> Iterator[tuple[str, Path, Path, subprocess.Popen[str]]]:
    store = tmp_path / "store"
    write_linear_package(store)
    tokens = tmp_path / "api-tokens"
    tokens.write_text(tokens_text)
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port, f'tokens_file = "{tokens}"\n')
    proc = daemon_proc.start(config)
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        yield url, tokens, config, proc
    finally:
        daemon_proc.stop(proc)


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _infer(url: str, token: str | None) -> int:
    r = httpx.post(f"{url}/v2/models/{APP}/infer", json=BODY, headers=_headers(token), timeout=30)
    return r.status_code


def _select(url: str, token: str | None, variant: str) -> httpx.Response:
    return httpx.post(f"{url}/admin/models/{APP}/select", json={"variant": variant},
                      headers=_headers(token), timeout=60)  # fmt: skip


def _variant(url: str, token: str) -> str:
    doc = httpx.get(f"{url}/status", headers=_headers(token), timeout=10).json()
    return str(next(a["variant"] for a in doc["applications"] if a["app"] == APP))


def test_an_infer_token_infers_but_may_not_pin_and_sighup_rotates_scopes(tmp_path: Path) -> None:
    tokens_text = (
        "# one token per line; a bare token keeps every right (infer and admin)\n"
        "scopes=infer   camera-gateway-token\n"
        "scopes=admin,infer   operator-token\n"
    )
    with _daemon(tmp_path, tokens_text) as (url, tokens, _, proc):
        assert _infer(url, "camera-gateway-token") == 200
        before = _variant(url, "camera-gateway-token")
        other = "small" if before == "large" else "large"
        refused = _select(url, "camera-gateway-token", other)
        assert refused.status_code == 403, refused.text
        message = refused.json()["error"]
        assert "admin" in message and "scope" in message and "camera-gateway-token" not in message
        assert _variant(url, "operator-token") == before  # nothing changed

        pinned = _select(url, "operator-token", other)
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["variant"] == other and _variant(url, "operator-token") == other
        assert _infer(url, "operator-token") == 200
        unknown = (_infer(url, None), _infer(url, "wrong"), _select(url, "wrong", "auto"))
        assert unknown[:2] == (401, 401) and unknown[2].status_code == 401

        # SIGHUP: the gateway's token gains admin, the operator's is revoked
        tokens.write_text("scopes=infer,admin camera-gateway-token\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _select(url, "camera-gateway-token", "auto").status_code == 200,
                   "the rotated scopes in force", timeout=60, interval=0.3)  # fmt: skip
        assert _infer(url, "operator-token") == 401


def test_bare_tokens_keep_every_right_and_models_use_sends_an_admin_token(tmp_path: Path) -> None:
    """An existing tokens file (bare tokens only) works as before: infer and pin. `models
    use` picks a token with the admin scope, not merely the first one."""
    with _daemon(tmp_path, "# rotated weekly\nold-style-token\n") as (url, tokens, config, proc):
        assert _infer(url, "old-style-token") == 200
        assert _select(url, "old-style-token", "large").status_code == 200

        # the infer-only token first: `models use` must not send it
        tokens.write_text("scopes=infer first-token\nscopes=admin second-token\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _infer(url, "first-token") == 200, "the new tokens", timeout=60)
        code, out = _use(config, "small")
        assert code == 0, out
        assert "now serving small" in out and _variant(url, "first-token") == "small"

        # a client with a settings file of its own: api.admin_token_file names the token
        client = tmp_path / "client.toml"
        admin = tmp_path / "admin-token"
        admin.write_text("second-token\n")
        port = url.rsplit(":", 1)[1]
        client.write_text(f'demo = false\n[api]\nport = {port}\nadmin_token_file = "{admin}"\n')
        code, out = _use(client, "large")
        assert code == 0, out
        assert _variant(url, "first-token") == "large"
        # ... or the environment does; an infer-only token gets the daemon's 403, in words
        infer_only = tmp_path / "infer-token"
        infer_only.write_text("scopes=infer first-token\n")
        env = {"HEADFRAME_API__ADMIN_TOKEN_FILE": str(infer_only)}
        code, out = _use(client, "auto", env)
        assert code == 1 and "403" in out and "admin" in out, out
        assert _variant(url, "first-token") == "large"


def _use(config: Path, variant: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    r = subprocess.run(
        [sys.executable, "-m", "runtime", "models", "use", APP, variant, "--config", str(config)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return r.returncode, r.stdout + r.stderr
