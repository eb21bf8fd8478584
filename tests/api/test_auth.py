"""API token scopes (issue 25, item 19): the tokens-file syntax (a bare token keeps every
right, ``scopes=...`` restricts), and the guard over real HTTP on loopback: 401 for no
token, 403 with a clear body for a valid token that lacks the route's scope, on every
kind of route. The daemon's story (SIGHUP, `models use`): tests/e2e/test_token_scopes.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from runtime.api.auth import ADMIN, EVERY_SCOPE, INFER, ApiToken, load_tokens, required_scope
from runtime.catalog import Store
from runtime.config import ApiSettings, Settings
from runtime.errors import ConfigError
from tests.support.http_server import ServerHandle, serving
from tests.support.loaders import ort_loader
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
BODY = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]}


def test_a_tokens_file_with_and_without_scopes(tmp_path: Path) -> None:
    f = tmp_path / "api-tokens"
    f.write_text(
        "# a file from before scopes: bare tokens keep every right\n"
        "old-token\n"
        "scopes=infer    gateway\n"
        "scopes=admin,infer ops\n"
        "  scopes=admin   pinner  \n"
        "scopes=admin gateway\n"  # listed twice: both lines' scopes
    )
    tokens = load_tokens(ApiSettings(tokens=[SecretStr("scopes=infer inline")], tokens_file=f))
    assert tokens == [
        ApiToken(b"inline", frozenset({INFER})),
        ApiToken(b"old-token", EVERY_SCOPE),
        ApiToken(b"gateway", frozenset({INFER})),
        ApiToken(b"ops", EVERY_SCOPE),
        ApiToken(b"pinner", frozenset({ADMIN})),
        ApiToken(b"gateway", frozenset({ADMIN})),
    ]
    assert "gateway" not in repr(tokens) and "old-token" not in repr(tokens)


@pytest.mark.parametrize(
    "line, problem",
    [("scopes=admn s3cret", "unknown scope 'admn'"), ("scopes=infer s3cret two", "one token"),
     ("scopes= s3cret", "unknown scope ''"), ("scopes=infer", "one token")],
)  # fmt: skip
def test_a_wrong_scoped_line_names_the_line_never_the_token(
    tmp_path: Path, line: str, problem: str
) -> None:
    f = tmp_path / "api-tokens"
    f.write_text(f"fine-token\n{line}\n")
    with pytest.raises(ConfigError) as e:
        load_tokens(ApiSettings(tokens_file=f))
    assert f"{f}: line 2" in e.value.message and problem in e.value.message
    assert "s3cret" not in e.value.message


def test_which_routes_need_admin() -> None:
    assert required_scope("/admin/models/x/select") == ADMIN and required_scope("/admin") == ADMIN
    for path in ("/v2/models/x/infer", "/v1/chat/completions", "/status", "/metrics", "/",
                 "/administrator", "/v1/admin"):  # fmt: skip
        assert required_scope(path) == INFER, path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    write_linear_package(tmp_path / "store")
    tokens = [SecretStr("scopes=infer app-token"), SecretStr("scopes=admin ops-token"),
              SecretStr("bare-token")]  # fmt: skip
    settings = Settings(demo=False, api=ApiSettings(tokens=tokens))
    package = Store(tmp_path / "store").load(APP)
    with serving([package], loader=ort_loader, settings=settings) as handle:
        yield handle


def _as(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_each_token_reaches_what_its_scopes_allow(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def infer(token: str | None) -> int:
            return http.post(f"/v2/models/{APP}/infer", json=BODY, headers=_as(token)).status_code

        def select(token: str | None) -> httpx.Response:
            return http.post(f"/admin/models/{APP}/select", json={"variant": "small"},
                             headers=_as(token))  # fmt: skip

        # an infer token: every inference and status route; /admin refused, in words
        assert infer("app-token") == 200
        for path in ("/status", "/metrics", "/v1/models", f"/v2/models/{APP}", "/"):
            assert http.get(path, headers=_as("app-token")).status_code == 200, path
        refused = select("app-token")
        assert refused.status_code == 403
        assert refused.json() == {"error": refused.json()["error"]}  # KServe's shape
        assert "lacks the 'admin' scope" in refused.json()["error"]
        # an admin-only token pins, and may not infer (OpenAI's error object under /v1/)
        assert select("ops-token").status_code == 200
        assert infer("ops-token") == 403
        v1 = http.get("/v1/models", headers=_as("ops-token"))
        assert v1.status_code == 403
        assert v1.json()["error"]["type"] == "permission_error"
        assert v1.json()["error"]["code"] == "forbidden"
        # a bare token: both, as before scopes existed
        assert infer("bare-token") == 200 and select("bare-token").status_code == 200
        # no token or a wrong one: 401 everywhere but the health checks
        assert (infer(None), infer("app"), select(None).status_code) == (401, 401, 401)
        assert http.get("/v2/health/live").status_code == 200
