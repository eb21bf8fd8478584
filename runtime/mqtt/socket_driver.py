"""Drives one MQTT connection's socket from the event loop (paho's external-loop hooks).

Reads run when the selector reports the socket readable, and again at once while packets
wait in the client's read buffer or TLS holds decrypted bytes (the socket reports neither).
Writes run at the end of the loop pass in which paho queued a packet, so the replies and
acknowledgements of one pass leave in one system call; only a full socket buffer makes us
wait for the selector. ``before_send`` runs before any byte is sent: the bridge stores
replies there. Keepalive (paho's ``loop_misc``) runs once a second. ``hold_reads`` stops
reading (the socket leaves the selector) until released: flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from runtime.mqtt.plain_client import PlainClient


class SocketDriver:
    """Create on the running loop; ``serve()`` once per connection."""

    def __init__(self, client: PlainClient, *, before_send: Callable[[], None]) -> None:
        self.client = client
        self.before_send = before_send
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._sock: Any = None  # the socket registered with the loop
        self._closed = asyncio.Event()  # set when that socket is closed
        self._flush_due = False  # a write is scheduled for the end of this loop pass
        self._writer_added = False  # the selector watches the socket for writability
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write

    async def serve(self) -> None:
        """Drive paho until the connection's socket is closed (by either side)."""
        sock = self.client.socket()
        if sock is None:
            return
        self._sock = sock
        self._closed = asyncio.Event()
        self._flush_due = self._writer_added = False
        self.client.hold_reads(False)  # a new connection starts reading (CONNACK, at least)
        self._loop.add_reader(sock, self._readable)
        if self.client.want_write():  # CONNECT, queued by reconnect()
            self._want_write(sock)
        try:
            while not self._closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), 1.0)
                if self._sock is not None:
                    self.client.loop_misc()  # keepalive: PINGREQ, and closes a dead link
        finally:
            self.detach()

    def detach(self, sock: Any = None) -> None:
        """Take the socket (or only ``sock``, if it is the current one) off the loop."""
        current = self._sock
        if current is None or (sock is not None and sock is not current):
            return
        self._sock = None
        if not self._loop.is_closed():
            self._loop.remove_reader(current)
            if self._writer_added:
                self._loop.remove_writer(current)
                self._writer_added = False
        self._closed.set()

    # --- reading ------------------------------------------------------------------------

    def hold_reads(self, hold: bool) -> None:
        """Stop reading from the broker (``True``) or go on (``False``); on the loop only."""
        if self.client.reads_held == hold:
            return
        self.client.hold_reads(hold)
        sock = self._sock
        if sock is None:
            return
        if hold:
            self._loop.remove_reader(sock)  # else a readable socket would wake us for nothing
        else:
            self._loop.add_reader(sock, self._readable)
            self._loop.call_soon(self._readable)  # packets may wait in the read buffer

    def _readable(self) -> None:
        sock = self._sock
        if self.client.reads_held:
            return
        try:
            self.client.loop_read()
        finally:
            # Even after a failed callback: packets left in the buffer must not wait for
            # the next bytes from the broker.
            # Held meanwhile: hold_reads(False) schedules the next read.
            if sock is not None and sock is self._sock and not self.client.reads_held:
                pending = getattr(sock, "pending", None)
                if self.client.buffered() or (pending is not None and pending()):
                    self._loop.call_soon(self._readable)

    # --- writing ------------------------------------------------------------------------

    def _want_write(self, sock: Any) -> None:
        if sock is self._sock and not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        sock = self._sock
        if sock is None:
            return
        # Replies are stored before any byte leaves: paho's own write path (the fallback)
        # sends inside loop_write, the fast path only gathers there.
        self.before_send()
        self.client.loop_write()  # paho's packets into the client's write buffer
        if sock is self._sock:
            self._send_buffered()

    def _send_buffered(self) -> None:
        """Send the write buffer; while the socket is full, let the selector say when."""
        sock = self._sock
        if sock is None:
            return
        self.before_send()
        done = self.client.flush_writes()
        if not done and not self._writer_added:
            self._loop.add_writer(sock, self._send_buffered)
            self._writer_added = True
        elif done and self._writer_added:
            self._loop.remove_writer(sock)
            self._writer_added = False

    # --- paho's socket callbacks ----------------------------------------------------------

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` now when on the loop's thread, else hand it to the loop."""
        if self._loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._closing, sock)

    def _closing(self, sock: Any) -> None:
        try:
            if sock is self._sock:
                self.before_send()
                self.client.flush_writes(sock)  # a DISCONNECT paho has just written, say
        finally:
            self.client.drop_unsent()  # a broker that stopped reading: let the bytes go
            self.detach(sock)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._want_write, sock)
