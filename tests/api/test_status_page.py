"""The status page as a browser renders it (Debian's headless Chromium), and TLS."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.box.description import BoxDescription
from runtime.catalog import Store
from runtime.config import Settings
from runtime.service import InferenceService
from tests.support.http_server import running_server
from tests.support.prereq import need_tool

APP = "part-id-reader"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _build(store: Path, loader: Any) -> Any:
    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader)
        await service.add(Store(store).load(APP), pin="small")
        context = ServerContext(lambda: BoxDescription(hostname="pit-3-cabinet"))
        return create_app(service, settings=Settings(demo=False), context=context), service

    return build


async def _close(service: InferenceService) -> None:
    await service.close()


def test_status_page_in_headless_chromium_shows_the_chosen_variant(
    store: Path, loader: Any, tmp_path: Path
) -> None:
    need_tool(CHROMIUM)
    with running_server(_build(store, loader), close=_close) as server:
        with httpx.Client(base_url=server.url) as http:  # some traffic for the figures
            body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                                "data": [0] * 64}]}  # fmt: skip
            for _ in range(5):
                assert http.post(f"/v2/models/{APP}/infer", json=body).status_code == 200
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--dump-dom", server.url + "/"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    assert "<h2>part-id-reader <small>1.0.0</small></h2>" in dom
    assert '<b class="variant">small</b>' in dom
    assert "pit-3-cabinet" in dom and "ready" in dom
    assert "5 requests, 0 errors" in dom
    assert "http://" not in dom.replace(server.url, "")  # no external assets


def _self_signed(tmp_path: Path) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"cert": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")}


def test_tls_serves_with_the_given_certificate(store: Path, loader: Any, tmp_path: Path) -> None:
    tls = _self_signed(tmp_path)
    with running_server(_build(store, loader), close=_close, ssl=tls) as server:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=tls["cert"]) as http:
            assert http.get("/v2/health/live").json() == {"live": True}
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=server.url) as http:
            http.get("/v2/health/live")  # not trusted without the certificate


def test_extra_sections_render_as_tables_not_python_reprs() -> None:
    from runtime.api.status import render_html

    doc = {
        "server": {"ready": True, "version": "0.1.0", "uptime_s": 5, "pid": 1},
        "host": {"hostname": "pit-3"},
        "applications": [],
        "mqtt": {
            "connected": True,
            "broker": "127.0.0.1:1883",
            "buffer": {"rows": 3, "bytes": 512},
            "refusals": [{"code": "not_authorized", "count": 2}, {"code": "<b>", "count": 1}],
            "topics": ["a/infer", "b/infer"],
        },
    }
    page = render_html(doc)
    mqtt = page[page.index("<h2>mqtt</h2>") :]
    assert "<th>connected</th><td>yes</td>" in mqtt
    assert "<th>rows</th><td>3</td>" in mqtt  # nested section, nested table
    assert "<tr><th>code</th><th>count</th></tr>" in mqtt  # records: one column per key
    assert "<td>not_authorized</td><td>2</td>" in mqtt
    assert "<td>&lt;b&gt;</td>" in mqtt  # escaped once, not twice, never raw
    assert "a/infer, b/infer" in mqtt
    assert "{'" not in page and "<pre>" not in page
