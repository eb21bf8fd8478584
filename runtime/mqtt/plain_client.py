"""paho's client on its own code paths, with the small interface the socket driver uses.

The fallback for runtime.mqtt.loop_client (see runtime.mqtt.paho_compat): no private paho
hook is touched. paho connects (blocking, so the connection runs ``reconnect`` in a worker
thread), reads straight from the socket and writes in ``loop_write``; holding reads just
keeps the driver from calling ``loop_read``, and TCP holds the rest at the broker.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import paho.mqtt.client as paho


class PlainClient(paho.Client):
    """A paho client the socket driver can drive without paho's private API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hf_held = False

    def reset_io(self) -> None:
        """Nothing to reset: paho keeps no bytes of ours between connections."""

    def hold_reads(self, hold: bool) -> None:
        """While held, the driver does not call ``loop_read`` (the socket is left unread)."""
        self._hf_held = hold

    @property
    def reads_held(self) -> bool:
        return self._hf_held

    def buffered(self) -> bool:
        """Bytes received and not yet read by paho: paho reads the socket itself, so none."""
        return False

    def flush_writes(self, sock: Any = None) -> bool:
        """Let paho write what it queued; True when nothing is left. ``sock``: a socket
        paho is closing, which it has already written to."""
        if sock is not None or self.socket() is None:
            return True
        self.loop_write()
        return not self.want_write()

    def drop_unsent(self) -> None:
        """paho forgets unsent packets itself when it closes the socket."""

    def abort(self) -> None:
        """End the connection now, without DISCONNECT (a handshake still in progress, or
        a broker that no longer reads): paho then reads end-of-stream and closes the
        socket through its own error path."""
        sock: Any = self.socket()  # a socket or an SSLSocket: both shut down
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
