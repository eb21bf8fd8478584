"""The connection against a real Mosquitto: back-off, re-subscribe, TLS, mTLS, refusals.

The connection lives on an event loop (as in the daemon): each test runs one on a thread
and starts and stops connections there."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from runtime.config import MqttSettings
from runtime.mqtt.connection import MqttConnection, Will
from runtime.retry import backoff_delays
from tests.support.certs import CertAuthority
from tests.support.loop_thread import LoopThread
from tests.support.mosquitto import Mosquitto, TlsFiles
from tests.support.mqtt_client import Requester
from tests.support.wait import holds_within

pytestmark = pytest.mark.mqtt


class Inbox:
    def __init__(self) -> None:
        self.msgs: list[paho.MQTTMessage] = []
        self.event = threading.Event()
        self.conn: MqttConnection | None = None

    def __call__(self, msg: paho.MQTTMessage) -> None:
        self.msgs.append(msg)
        self.event.set()
        if self.conn is not None:
            self.conn.ack(msg.mid, msg.qos)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as lt:
        yield lt


class Conn(MqttConnection):
    """A connection started and stopped on the test's event loop thread."""

    def __init__(self, loop: LoopThread, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lt = loop

    def start(self) -> None:  # type: ignore[override]
        self.lt.run(super().start)

    def stop(self, timeout: float = 5.0) -> None:  # type: ignore[override]
        self.lt.call(super().stop(timeout))


def _conn(
    loop: LoopThread,
    settings: MqttSettings,
    inbox: Inbox | None = None,
    topics: list[str] | None = None,
) -> Conn:
    inbox = inbox or Inbox()
    conn = Conn(loop, settings, subscriptions=lambda: topics or ["t/in/+"], on_message=inbox)
    inbox.conn = conn
    return conn


def _settings(broker: Mosquitto, **kw: Any) -> MqttSettings:
    return MqttSettings(host=broker.host, port=broker.port, node=kw.pop("node", "n1"), **kw)


def _publish_until(broker: Mosquitto, inbox: Inbox, topic: str, timeout: float = 5.0) -> bool:
    """Publish (QoS 1) until the connection under test receives it."""
    with Requester(broker.host, broker.port) as r:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inbox.event.clear()
            r.request(topic, b"ping", reply_topic=False)
            if inbox.event.wait(0.2):
                return True
    return False


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    delays = backoff_delays(0.1, 1.6)
    seq = [next(delays) for _ in range(10)]
    assert 0.05 <= seq[0] <= 0.1
    assert all(0.8 <= d <= 1.6 for d in seq[5:])
    assert len(set(seq)) == len(seq)  # jittered


def test_nodelay_resubscribe_after_broker_kill(loop: LoopThread, broker: Mosquitto) -> None:
    inbox = Inbox()
    conn = _conn(loop, _settings(broker), inbox)
    conn.start()
    try:
        assert conn.wait_connected(5)
        sock = conn.client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert _publish_until(broker, inbox, "t/in/a")

        broker.kill()
        time.sleep(0.5)
        broker.start()
        back = time.monotonic()
        assert conn.wait_connected(2.0), "not reconnected within 2 s of the broker's return"
        # Subscriptions are made again on every connect: a new message arrives.
        assert _publish_until(broker, inbox, "t/in/b", timeout=3.0)
        assert time.monotonic() - back < 4.0
    finally:
        conn.stop()


def _publish(loop: LoopThread, conn: MqttConnection, topic: str, body: bytes) -> None:
    loop.run(lambda: conn.publish(topic, body, qos=1, retain=False, properties=None))


def _echo(
    loop: LoopThread,
    conn: MqttConnection,
    inbox: Inbox,
    topic: str,
    payloads: list[bytes],
    timeout: float,
) -> list[bytes]:
    """Publish ``payloads`` to ``topic`` (which ``conn`` subscribes to); what came back."""
    for body in payloads:
        _publish(loop, conn, topic, body)
    holds_within(lambda: len(inbox.msgs) >= len(payloads), timeout)
    return [m.payload for m in inbox.msgs]


def test_messages_larger_than_the_socket_buffers_arrive_whole_and_in_order(
    loop: LoopThread, broker: Mosquitto
) -> None:
    inbox = Inbox()
    conn = _conn(loop, _settings(broker), inbox)
    conn.start()
    try:
        assert conn.wait_subscribed(5)
        # 8 MiB does not fit the socket's send buffer: the rest goes when it drains.
        payloads = [os.urandom(8 * 1024 * 1024), b"small", os.urandom(300_000)]
        assert _echo(loop, conn, inbox, "t/in/big", payloads, 30) == payloads
    finally:
        conn.stop()


def test_nothing_is_sent_before_the_before_send_hook_has_run(
    loop: LoopThread, broker: Mosquitto
) -> None:
    # The bridge stores replies in this hook: a message must never leave before it ran.
    stored: set[bytes] = set()
    unstored_seen: list[bytes] = []
    staged: list[bytes] = []
    inbox = Inbox()

    def receive(msg: paho.MQTTMessage) -> None:
        if msg.payload not in stored:
            unstored_seen.append(msg.payload)
        inbox(msg)

    conn = Conn(loop, _settings(broker), subscriptions=lambda: ["t/in/+"], on_message=receive)
    inbox.conn = conn

    def hook() -> None:
        stored.update(staged)
        staged.clear()

    conn.before_send = hook
    conn.start()
    try:
        assert conn.wait_subscribed(5)
        for i in range(50):
            body = b"reply %d" % i

            def send(body: bytes = body) -> None:
                staged.append(body)
                conn.publish("t/in/x", body, qos=1, retain=False, properties=None)

            loop.run(send)
        assert holds_within(lambda: len(inbox.msgs) == 50, 10)
        assert unstored_seen == []
    finally:
        conn.stop()


@pytest.mark.slow
def test_a_frozen_broker_is_noticed_by_keepalive_and_left(
    loop: LoopThread, broker: Mosquitto
) -> None:
    # No reset, no FIN: only the keepalive (PINGREQ unanswered) can tell the link is dead.
    conn = _conn(loop, _settings(broker, keepalive=5))
    conn.start()
    assert broker.proc is not None
    try:
        assert conn.wait_connected(5)
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            assert holds_within(lambda: not conn.connected, 16), "a frozen broker went unnoticed"
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        assert conn.wait_connected(10), "not back once the broker answered again"
    finally:
        conn.stop()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "paho-own-paths"])
def test_stop_during_the_handshake_closes_at_once_and_stays_closed(
    loop: LoopThread, fast: bool
) -> None:
    # A "broker" that accepts TCP and never answers CONNECT.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    settings = MqttSettings(host="127.0.0.1", port=port, node="n1", paho_fast_path=fast)
    conn = _conn(loop, settings)
    conn.start()
    try:
        server.settimeout(5)
        peer, _ = server.accept()
        peer.settimeout(5)
        assert peer.recv(1) == b"\x10"  # CONNECT
        started = time.monotonic()
        conn.stop()
        assert time.monotonic() - started < 1.0
        peer.recv(65536)  # the rest of CONNECT
        assert peer.recv(1) == b"", "the socket was left open after stop"
        assert not conn.connected and conn.connects == 0
    finally:
        server.close()


def test_a_failing_message_handler_neither_stalls_nor_repeats_messages(
    loop: LoopThread, broker: Mosquitto
) -> None:
    seen: list[bytes] = []

    def handler(msg: paho.MQTTMessage) -> None:
        seen.append(msg.payload)
        conn.ack(msg.mid, msg.qos)
        if msg.payload == b"m0":
            raise RuntimeError("a handler bug")

    conn = Conn(loop, _settings(broker), subscriptions=lambda: ["t/in/+"], on_message=handler)
    conn.start()
    try:
        assert conn.wait_subscribed(5)

        def burst() -> None:  # in one loop pass, so they arrive together
            for i in range(3):
                conn.publish("t/in/x", b"m%d" % i, qos=1, retain=False, properties=None)

        loop.run(burst)
        assert holds_within(lambda: len(seen) >= 3, 3), (
            f"messages stalled after the failure: {seen}"
        )
        time.sleep(0.3)
        assert seen == [b"m0", b"m1", b"m2"]
    finally:
        conn.stop()


def test_broker_absent_at_start_is_normal(loop: LoopThread, make_broker: Any) -> None:
    broker = make_broker("late")
    conn = _conn(loop, _settings(broker))
    conn.start()
    try:
        time.sleep(1.0)
        assert not conn.connected and conn.failures >= 2
        broker.start()
        assert conn.wait_connected(3.0)
    finally:
        conn.stop()


def test_bad_password_fails_cleanly_with_backoff(
    loop: LoopThread, make_broker: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker("auth", passwords={"box": "right-horse-battery"}).start()
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("staple-wrong-guess\n")
    caplog.set_level(logging.DEBUG)
    conn = _conn(loop, _settings(broker, username="box", password_file=wrong, reconnect_max_s=0.5))
    conn.start()
    try:
        time.sleep(2.0)
        assert not conn.connected
        # Refused: retried on the slow schedule (0.5 s doubling), not in a tight loop.
        assert 1 <= conn.failures <= 4
        assert "refused us" in caplog.text and "password" in caplog.text
        assert "staple-wrong-guess" not in caplog.text
        assert conn.client.is_connected() is False
    finally:
        conn.stop()
    right = tmp_path / "right.pw"
    right.write_text("right-horse-battery\n")
    ok = _conn(loop, _settings(broker, username="box", password_file=right))
    ok.start()
    try:
        assert ok.wait_connected(5)
    finally:
        ok.stop()
    assert "right-horse-battery" not in caplog.text


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CertAuthority, TlsFiles]:
    ca = CertAuthority(tmp_path / "pki")
    server = ca.issue("broker", server=True)
    return ca, TlsFiles(ca.ca_file, server.cert, server.key)


def test_tls_and_wrong_ca(loop: LoopThread,
    make_broker: Any, pki: tuple[CertAuthority, TlsFiles], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    ca, files = pki
    broker = make_broker("tls", tls=files).start()
    inbox = Inbox()
    conn = _conn(loop, _settings(broker, tls={"ca_file": ca.ca_file}), inbox)
    conn.start()
    try:
        assert conn.wait_subscribed(5)
        # Messages cross TLS both ways, larger than one TLS record (16 KiB), so the reader
        # must drain what TLS holds decrypted as well as what the socket reports.
        payloads = [os.urandom(n) for n in (10, 200_000, 70_000)]
        assert _echo(loop, conn, inbox, "t/in/tls", payloads, 10) == payloads
    finally:
        conn.stop()

    other = CertAuthority(tmp_path / "other", name="some other CA")
    caplog.set_level(logging.WARNING)
    bad = _conn(loop, _settings(broker, node="n2", tls={"ca_file": other.ca_file}))
    bad.start()
    try:
        assert not bad.wait_connected(1.5)
        assert "certificate verify failed" in caplog.text
        assert bad.failures >= 1
    finally:
        bad.stop()


def test_mtls_needs_the_client_certificate(
    loop: LoopThread, make_broker: Any, pki: tuple[CertAuthority, TlsFiles]
) -> None:
    ca, files = pki
    files.require_client_cert = True
    broker = make_broker("mtls", tls=files).start()
    client = ca.issue("box-1", server=False)
    good = _conn(
        loop,
        _settings(
            broker, tls={"ca_file": ca.ca_file, "cert_file": client.cert, "key_file": client.key}
        ),
    )
    good.start()
    try:
        assert good.wait_connected(5)
    finally:
        good.stop()
    anon = _conn(loop, _settings(broker, node="n2", tls={"ca_file": ca.ca_file}))
    anon.start()
    try:
        assert not anon.wait_connected(1.5)
        assert anon.failures >= 1
    finally:
        anon.stop()


def test_duplicate_client_id_is_logged_clearly(
    loop: LoopThread, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    first = _conn(loop, _settings(broker, reconnect_max_s=0.5, refused_max_s=1.0))
    first.start()
    assert first.wait_connected(5)
    second = _conn(loop, _settings(broker, reconnect_max_s=0.5, refused_max_s=1.0))
    second.start()
    try:
        assert second.wait_connected(5)
        deadline = time.monotonic() + 3
        while "took the session over" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "another client is probably using our client id 'headframe-n1'" in caplog.text
    finally:
        second.stop()
        first.stop()


def test_the_will_is_built_for_every_connect_and_only_for_one(
    loop: LoopThread, make_broker: Any
) -> None:
    # Sparkplug's NDEATH Will must carry the bdSeq of the session it ends: the connection
    # asks for a Will at every CONNECT it sends, and never for an attempt that found no
    # broker (that would skip a number).
    broker = make_broker("wills")
    built: list[int] = []

    def will() -> Will:
        built.append(len(built) + 1)
        return Will("t/will", b"will %d" % built[-1], qos=1, retain=False)

    settings = _settings(broker, reconnect_max_s=0.3)
    conn = Conn(loop, settings, subscriptions=list, will=will, clean_start=True)
    conn.start()
    try:
        assert holds_within(lambda: conn.failures >= 3, 5)
        assert built == []  # no broker, no CONNECT, no Will
        broker.start()
        assert conn.wait_connected(3)
        assert built == [1]
        with Requester(broker.host, broker.port, subscribe=["t/will"]) as watcher:
            loop.run(conn.client.abort)  # the link is cut: no DISCONNECT, so the broker
            assert watcher.wait_for(lambda r: r.on_topic("t/will"), 5)  # publishes the Will
            assert [m.payload for m in watcher.on_topic("t/will")] == [b"will 1"]
            assert holds_within(lambda: conn.connects == 2, 5)
            assert built == [1, 2]
            loop.run(conn.client.abort)
            assert watcher.wait_for(lambda r: len(r.on_topic("t/will")) == 2, 5)
            assert watcher.on_topic("t/will")[1].payload == b"will 2"  # this session's own
    finally:
        conn.stop()


def test_reconnect_now_opens_a_new_session_at_once_without_the_will(
    loop: LoopThread, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    built: list[int] = []

    def will() -> Will:
        built.append(1)
        return Will("t/will", b"gone", qos=1, retain=False)

    conn = Conn(loop, _settings(broker), subscriptions=list, will=will, clean_start=True)
    conn.start()
    try:
        assert conn.wait_connected(5)
        with Requester(broker.host, broker.port, subscribe=["t/will"]) as watcher:
            for n in (2, 3, 4):  # more than the "flapping" count: asked for, not a fault
                loop.run(conn.reconnect_now)
                assert holds_within(lambda n=n: conn.connects == n and conn.connected, 3)
            time.sleep(0.3)
            assert watcher.on_topic("t/will") == []  # a normal DISCONNECT drops the Will
        assert len(built) == 4 and conn.failures == 0
        assert list(conn.waits) == []  # no back-off
        assert "connection lost" not in caplog.text and "client id" not in caplog.text
    finally:
        conn.stop()


def test_a_clean_session_announces_no_expiry(loop: LoopThread, broker: Mosquitto) -> None:
    # Published while a clean session is away: nothing waits for it when it returns.
    inbox = Inbox()
    settings = _settings(broker)
    conn = Conn(loop, settings, subscriptions=lambda: ["t/in/+"], on_message=inbox,
                clean_start=True, manual_ack=False)  # fmt: skip
    conn.start()
    try:
        assert conn.wait_subscribed(5)
        assert conn.status()["session"] == "clean"
        conn.stop()
        with Requester(broker.host, broker.port) as r:
            r.request("t/in/a", b"while away", reply_topic=False).wait_for_publish(5)
        conn = Conn(loop, settings, subscriptions=lambda: ["t/in/+"], on_message=inbox,
                    clean_start=True, manual_ack=False)  # fmt: skip
        conn.start()
        assert conn.wait_subscribed(5)
        time.sleep(0.5)
        assert inbox.msgs == []
    finally:
        conn.stop()
