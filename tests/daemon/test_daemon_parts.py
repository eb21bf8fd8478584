"""The daemon's small parts against real sockets and files: sd_notify, the bind rule, logs."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest
from pydantic import SecretStr

from runtime.api.auth import EVERY_SCOPE, ApiToken, Tokens, check_bind, load_tokens, token_ok
from runtime.api.hosts import host_name, trusted_hosts
from runtime.config import ApiSettings
from runtime.daemon.logsetup import JsonFormatter, wants_json
from runtime.daemon.sdnotify import Notifier
from runtime.errors import ConfigError


def test_notify_reaches_an_abstract_socket_and_halves_the_watchdog() -> None:
    name = f"headframe-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000"})
        assert n.watchdog_interval_s() == 1.5
        assert n.send(READY=1, STATUS="serving part-id-reader")
        server.settimeout(5)
        assert server.recv(4096) == b"READY=1\nSTATUS=serving part-id-reader"
        n.close()
    finally:
        server.close()


def test_notify_is_silent_outside_systemd_and_for_another_pid() -> None:
    assert not Notifier({}).send(READY=1)
    other = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s() is None
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"})
    assert not gone.send(READY=1)  # logged, never raised


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_token(host: str) -> None:
    check_bind(host, [])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "box.plant.local"])
def test_other_binds_need_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match="no API token is configured"):
        check_bind(host, [])
    check_bind(host, [b"t0ken"])


def test_tokens_from_settings_and_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# operators\nabc123\n\n  def456  \n")
    tokens = load_tokens(ApiSettings(tokens=[SecretStr("inline")], tokens_file=f))
    assert [t.secret for t in tokens] == [b"inline", b"abc123", b"def456"]
    assert all(t.scopes == EVERY_SCOPE for t in tokens)  # bare tokens: every right
    assert token_ok(b"Bearer def456", tokens) and token_ok(b"bearer abc123", tokens)
    assert not token_ok(b"Bearer def45", tokens) and not token_ok(b"def456", tokens)
    assert not token_ok(None, tokens)
    with pytest.raises(ConfigError, match="cannot read the API tokens file"):
        load_tokens(ApiSettings(tokens_file=tmp_path / "missing"))


def test_json_logs_under_systemd() -> None:
    assert wants_json("auto", {"INVOCATION_ID": "abc"})
    assert wants_json("auto", {"JOURNAL_STREAM": "8:123"})
    assert not wants_json("auto", {})
    assert wants_json("json", {}) and not wants_json("text", {"INVOCATION_ID": "x"})
    record = logging.LogRecord(
        "runtime.daemon", logging.INFO, "f", 1, "ready in %.1f s", (2.5,), None
    )
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "ready in 2.5 s" and doc["level"] == "INFO"
    assert doc["logger"] == "runtime.daemon" and doc["ts"].endswith("Z")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("LocalHost:8080", "localhost"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("box.plant.:443", "box.plant"),
        ("::1", "::1"),
    ],
)
def test_host_header_names(header: str, name: str) -> None:
    assert host_name(header) == name


def test_trusted_hosts_policy() -> None:
    loopback = trusted_hosts(ApiSettings())
    assert loopback is not None
    assert loopback.allows("localhost:8080") and loopback.allows("127.9.9.9")
    assert not loopback.allows("evil.example") and not loopback.allows("localhost.evil.example")
    assert trusted_hosts(ApiSettings(host="0.0.0.0", tokens=[SecretStr("t")])) is None
    assert trusted_hosts(ApiSettings(trusted_hosts=["*"])) is None
    listed = trusted_hosts(ApiSettings(host="0.0.0.0", trusted_hosts=["Box.Plant", "*.site"]))
    assert listed is not None and listed.allows("box.plant:8080") and listed.allows("a.b.site")
    assert listed.allows("[::1]") and not listed.allows("site") and not listed.allows("other")
    with pytest.raises(ValueError):
        ApiSettings(trusted_hosts=["two words"])


def test_tokens_are_replaced_whole() -> None:
    tokens = Tokens([ApiToken(b"old")])
    assert tokens.accepts(b"Bearer old")
    tokens.replace([ApiToken(b"new")])
    assert tokens.accepts(b"Bearer new") and not tokens.accepts(b"Bearer old")
    tokens.replace([])
    assert not tokens and not tokens.accepts(b"Bearer new")
