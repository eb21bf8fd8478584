"""paho's MQTT client, adapted to be driven by an asyncio loop (runtime.mqtt.connection).

Changes to private paho hooks, all covered by the MQTT tests against a real broker. Used
only on the tested paho minor version (runtime.mqtt.paho_compat decides); any other
version gets runtime.mqtt.plain_client, paho's own code paths:

(Connecting and aborting need no private hook: the connection runs paho's own
``reconnect`` in a worker thread on both paths, and ``abort`` is PlainClient's. Earlier
``_create_socket`` and ``_sock_close`` overrides saved nothing a benchmark could see.)

- Reads are buffered. paho reads a packet in three or more ``recv`` calls (type byte,
  length bytes, body); here one ``recv`` per readable event fills a buffer they are
  served from. ``buffered()`` tells the loop that packets are waiting in it.
- Reads can be held (``hold_reads``): flow control when a broker sends more
  unacknowledged requests than our Receive Maximum allows. paho keeps a packet it has
  begun and goes on with it once reads are released; TCP holds the rest at the broker.
- Writes are gathered. paho sends each packet with its own ``send``; here they collect
  in a buffer that ``flush_writes`` sends at the end of the loop pass, so the
  acknowledgements and replies of several requests leave in one system call. A send that
  fails closes the connection through paho's own error path (``_loop_rc_handle``).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from paho.mqtt.enums import MQTTErrorCode

from runtime.mqtt.plain_client import PlainClient

log = logging.getLogger(__name__)

RECV_CHUNK = 65536
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class LoopClient(PlainClient):
    """A paho client whose socket I/O the caller drives (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()
        self._held = False

    # --- connecting -------------------------------------------------------------------

    def reset_io(self) -> None:
        """A new connection starts with empty buffers: call before ``reconnect``."""
        self._rbuf, self._rpos = b"", 0
        self._wbuf.clear()

    # --- reading ----------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._held:
            raise BlockingIOError  # paho keeps a partial packet and comes back for the rest
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(RECV_CHUNK)  # BlockingIOError when nothing came
            if not data:
                return data  # the broker closed the connection
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = start + bufsize
        return self._rbuf[start : self._rpos]

    def buffered(self) -> bool:
        """Bytes received and not yet read by paho (the socket will not report them)."""
        return not self._held and self._rpos < len(self._rbuf)

    def hold_reads(self, hold: bool) -> None:
        """While held, paho reads nothing more (``buffered()`` says False meanwhile)."""
        self._held = hold

    @property
    def reads_held(self) -> bool:
        return self._held

    # --- writing ----------------------------------------------------------------------

    def _sock_send(self, buf: bytes | bytearray) -> int:
        if self._sock is None:
            raise ConnectionError("not connected")
        self._wbuf += buf
        return len(buf)

    def flush_writes(self, sock: Any = None) -> bool:
        """Send the gathered bytes; True when none are left to send. ``sock``: the socket
        paho is closing (it has already let go of it). A failed send drops the bytes (QoS 1
        messages stay in paho's session and go again after the reconnect) and closes the
        connection through paho, as a failed send inside paho would."""
        current = sock is None
        sock = self._sock if current else sock
        if sock is None:
            self._wbuf.clear()
            return True
        while self._wbuf:
            try:
                sent = sock.send(self._wbuf)
            except _WOULD_BLOCK:
                return False
            except OSError as e:
                log.debug("mqtt: send failed: %s", e)
                self._wbuf.clear()
                if current and sock is self._sock:
                    self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
                return True
            del self._wbuf[:sent]
        return True

    def drop_unsent(self) -> None:
        """Forget bytes that could not be sent before the connection closed."""
        self._wbuf.clear()
