"""Which broker, credentials and TLS the edge node uses (``broker_link``), tested as an
operator writes them: [sparkplug] on a broker of its own never sends [mqtt]'s password
in clear text."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from runtime.config import Settings, load_settings
from runtime.config.settings import apply_credentials
from runtime.errors import ConfigError
from runtime.sparkplug import payload as sp
from runtime.sparkplug.node import EdgeNode
from runtime.sparkplug.wiring import broker_link

PASSWORD = "mqtt-s3cret-password"


class NoMetrics:
    def node_metrics(self) -> list[sp.Metric]:
        return []

    def devices(self) -> dict[str, list[sp.Metric]]:
        return {}


def _listener() -> tuple[socket.socket, bytearray, threading.Thread]:
    """A TCP port that records every byte a client sends it (what a sniffer on the plant
    network would see of a plain-TCP MQTT CONNECT)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    seen = bytearray()

    def run() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.settimeout(1)
        with conn:
            try:
                while chunk := conn.recv(4096):
                    seen.extend(chunk)
            except OSError:
                pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server, seen, thread


def _what_the_node_sends(config: dict[str, object], tmp_path: Path) -> bytes:
    """The node started for a second on ``config`` with its [sparkplug] broker a port
    that records what it is sent: the bytes that port received."""
    server, seen, thread = _listener()
    config["sparkplug"] = {**config["sparkplug"], "port": server.getsockname()[1]}  # type: ignore[dict-item]
    settings = Settings(**config)  # type: ignore[arg-type]

    async def main() -> None:
        async def select(app: str, pin: str | None) -> None: ...

        link = broker_link(settings)
        node = EdgeNode(settings.sparkplug, link=link, source=NoMetrics(), select=select,
                        obey=lambda c: False, state_dir=tmp_path / "state")  # fmt: skip
        node.start()
        await asyncio.sleep(1.0)
        await node.stop()

    try:
        asyncio.run(main())
    finally:
        server.close()
        thread.join(5)
    return bytes(seen)


def _own_broker(tmp_path: Path, port: int = 1883, **sparkplug: object) -> dict[str, object]:
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    return {
        "mqtt": {"host": "broker.plant.local", "username": "crusher-2", "password_file": secret,
                 "tls": {"ca_file": tmp_path / "ca.pem"}},
        "sparkplug": {"enabled": True, "host": "127.0.0.1", "port": port, **sparkplug},
    }  # fmt: skip


def test_a_broker_of_its_own_is_not_sent_the_mqtt_password_in_clear_text(tmp_path: Path) -> None:
    """Issue 25, item 11: [sparkplug] host names a broker of its own (plain TCP: [mqtt.tls]
    is [mqtt]'s broker's) and no credentials: the node once sent [mqtt]'s user name and
    password to it in clear text. That configuration is refused at load, naming the keys."""
    try:
        sent = _what_the_node_sends(_own_broker(tmp_path), tmp_path)
    except ValueError as e:
        message = str(e)
    else:
        raise AssertionError(f"accepted; the broker read {PASSWORD in sent.decode('latin-1')}")
    for key in ("mqtt.username", "mqtt.password_file", "sparkplug.username",
                "sparkplug.password_file", "sparkplug.tls"):  # fmt: skip
        assert key in message, message
    # The same from a file: the daemon and `headframe config check` say it at load.
    cfg = tmp_path / "headframe.toml"
    cfg.write_text(
        f'[mqtt]\nusername = "crusher-2"\npassword_file = "{tmp_path / "mqtt-password"}"\n'
        '[sparkplug]\nenabled = true\nhost = "spb.plant.local"\n'
    )
    with pytest.raises(ConfigError, match=r"sparkplug.*clear text.*sparkplug.password_file"):
        load_settings(cfg, use_default_file=False)


def test_the_password_from_systemd_credentials_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's mqtt-password credential fills mqtt.password_file after the settings
    were checked; the node's link refuses it all the same."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    mqtt = {"username": "crusher-2"}
    sparkplug = {"enabled": True, "host": "spb.plant.local", "username": "spb-node"}
    settings = apply_credentials(Settings(mqtt=mqtt, sparkplug=sparkplug))  # type: ignore[arg-type]
    assert settings.mqtt is not None and settings.mqtt.password_file is not None
    with pytest.raises(ConfigError, match=r"mqtt\.password_file"):
        broker_link(settings)


def test_its_own_credentials_or_tls_are_what_a_broker_of_its_own_gets(tmp_path: Path) -> None:
    own = tmp_path / "spb-password"
    own.write_text("spb-pw\n")
    link = broker_link(
        Settings(**_own_broker(tmp_path, username="spb-node", password_file=own))  # type: ignore[arg-type]
    )
    assert (link.host, link.username, link.password_file, link.tls) == (
        "127.0.0.1", "spb-node", own, None,
    )  # fmt: skip
    ca = tmp_path / "spb-ca.pem"
    link = broker_link(Settings(**_own_broker(tmp_path, tls={"ca_file": ca})))  # type: ignore[arg-type]
    assert link.tls is not None and link.tls.ca_file == ca  # [mqtt]'s password, over TLS
    assert link.password_file == tmp_path / "mqtt-password"
    # On [mqtt]'s broker: its credentials and its TLS, as before.
    same = _own_broker(tmp_path)
    same["sparkplug"] = {"enabled": True}
    link = broker_link(Settings(**same))  # type: ignore[arg-type]
    assert link.host == "broker.plant.local" and link.tls is not None
    assert link.password_file == tmp_path / "mqtt-password"
    with pytest.raises(ValueError, match=r"sparkplug\.tls is for a broker of its own"):
        Settings(sparkplug={"enabled": True, "tls": {"ca_file": ca}})  # type: ignore[arg-type]
