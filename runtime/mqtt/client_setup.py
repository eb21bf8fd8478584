"""How every MQTT client of the daemon is made: one function, so the bridge, the Sparkplug
edge node and the stream bindings prove themselves to the broker the same way.

``new_client`` gives a paho-mqtt 2.x client speaking MQTT v5 with TLS or mTLS
(``[mqtt.tls]``), the user name and password file, TCP_NODELAY on every socket it opens,
and paho's own log routed into ours. Connecting, the session and the Will are the
connection's business (runtime.mqtt.connection).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from runtime.config import MqttSettings
from runtime.mqtt.credentials import read_password, tls_context
from runtime.mqtt.loop_client import LoopClient
from runtime.mqtt.plain_client import PlainClient

log = logging.getLogger(__name__)

MAX_INFLIGHT = 64  # QoS 1 messages out and not yet acknowledged (paho's default is 20)


def set_nodelay(sock: Any) -> None:
    """Turn Nagle off: paho leaves it on, and a request/response round trip then waits for
    delayed ACKs (44 to 88 ms on loopback instead of about 2 ms)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as e:
        log.debug("mqtt: could not set TCP_NODELAY: %s", e)


class PahoLog:
    """Where paho logs: detail to our DEBUG log, formatted only when DEBUG is on; the text
    of paho's errors (TLS alerts, resets) handed to ``on_error``, which keeps it as the
    reason for the connection's one clear warning."""

    def __init__(self, name: str, on_error: Callable[[str], None]) -> None:
        self._prefix = f"{name}: paho: "
        self._on_error = on_error

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= logging.ERROR:
            self._on_error(fmt % args)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(self._prefix + fmt, *args)


def new_client(
    settings: MqttSettings,
    *,
    client_id: str,
    fast_path: bool,
    manual_ack: bool,
    paho_log: PahoLog,
    on_socket_open: Callable[[Any], None] | None = None,
) -> PlainClient:
    """A client for ``settings``' broker, not yet connected. ``fast_path``: the tested
    private-API client (runtime.mqtt.loop_client) or paho's own code paths;
    ``on_socket_open(sock)`` runs on the connecting thread once the TCP connection (and TLS)
    is up, before CONNECT is written. A password file that cannot be read or certificates
    that do not load raise ConfigError, with the setting's name."""
    client_class = LoopClient if fast_path else PlainClient
    c = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    # paho's logger, not on_log: on_log makes paho format a line for every packet
    # (properties included), which cost more than a tenth of the bridge's time.
    c.enable_logger(paho_log)  # type: ignore[arg-type]
    c.max_inflight_messages_set(MAX_INFLIGHT)
    ctx = tls_context(settings)
    if ctx is not None:
        c.tls_set_context(ctx)
    if settings.username is not None:
        password = read_password(settings.password_file) if settings.password_file else None
        c.username_pw_set(settings.username, password)

    def opened(_client: paho.Client, _userdata: Any, sock: Any) -> None:
        set_nodelay(sock)
        if on_socket_open is not None:
            on_socket_open(sock)

    c.on_socket_open = opened
    return c
