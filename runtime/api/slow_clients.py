"""Clients that connect and never finish their headers, and more connections than the box
should hold: limits uvicorn does not have.

uvicorn 0.29-0.55 times out a kept-alive connection only after an answer, so a client
that opens a connection and sends a request's headers a byte at a time (or not at all)
holds it for ever: 200 such connections stayed open 60 s without a token. ``protocol(api)``
returns uvicorn's own HTTP protocol class (httptools', or h11's where httptools is
missing) with two rules added at the protocol level, below ASGI:

- a request's headers must be complete ``api.header_timeout_s`` after the connection
  opened, or, on a kept-alive connection, after the request's first byte; then the
  client gets ``408`` and the connection is closed;
- past ``api.max_connections`` open connections a new one is closed at once.

The hooks used are the HTTP parsers' own callbacks (httptools calls ``on_message_begin``
and ``on_headers_complete``; h11 reports its state after each event), on uvicorn's
protocol classes, which uvicorn's settings accept in place of its own (``http=``).
``check()`` says, at start-up, whether the installed uvicorn still has them; where it does
not, the daemon serves without these two rules and logs why (the body limit, the request
timeout and the token checks are plain ASGI and always apply).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runtime.config import ApiSettings

log = logging.getLogger(__name__)

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 33\r\n"
    b"connection: close\r\n\r\nrequest headers not sent in time\n"
)


class _HeaderDeadline:
    """The shared part: a timer per connection, armed while a request's head is awaited."""

    header_timeout_s: float = 10.0
    max_connections: int = 1024
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    _header_timer: asyncio.TimerHandle | None = None

    def _over_the_limit(self) -> bool:
        if len(self.connections) > self.max_connections:
            log.warning("HTTP: %d connections open, over api.max_connections; closing the new one",
                        len(self.connections))  # fmt: skip
            self.transport.close()
            return True
        return False

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_ANSWER)
            self.transport.close()


def _httptools_class() -> type[Any] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed
        return None

    class TimedHttpTools(_HeaderDeadline, HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if not self._over_the_limit():
                self._arm()  # the first request's headers are due from connecting

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # a kept-alive connection's next request: due from its first byte

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedHttpTools


def _h11_class() -> type[Any] | None:
    try:
        import h11
        from uvicorn.protocols.http.h11_impl import H11Protocol
    except ImportError:
        return None

    class TimedH11(_HeaderDeadline, H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if not self._over_the_limit():
                self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is h11.IDLE:
                if self.conn.trailing_data[0]:  # part of a request head is waiting
                    self._arm()
            else:  # the head is complete (a body, or the whole request, follows)
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedH11


_HOOKS = {
    "httptools": ("connection_made", "on_message_begin", "on_headers_complete", "connection_lost"),
    "h11": ("connection_made", "handle_events", "connection_lost"),
}


def check(kind: str = "auto") -> tuple[type[Any] | None, str]:
    """(the protocol class, a note): httptools' when installed (as uvicorn's "auto"), else
    h11's; None and why when the installed uvicorn lacks the hooks."""
    order = ["httptools", "h11"] if kind == "auto" else [kind]
    for name in order:
        cls = _httptools_class() if name == "httptools" else _h11_class()
        if cls is None:
            continue
        base = cls.__mro__[cls.__mro__.index(_HeaderDeadline) + 1]  # uvicorn's own class
        missing = [h for h in _HOOKS[name] if not callable(getattr(base, h, None))]
        if missing:
            return None, f"uvicorn's {name} protocol has no {', '.join(missing)}"
        return cls, name
    return None, "neither httptools nor h11 is importable"


def protocol(api: ApiSettings, kind: str = "auto") -> type[Any] | str:
    """The HTTP protocol class for uvicorn.Config(http=...), with ``api``'s header timeout
    and connection limit; uvicorn's own ("auto") when ``check`` finds no hooks."""
    cls, note = check(kind)
    if cls is None:
        log.warning("HTTP: no header timeout or connection limit (%s); serving without them", note)
        return "auto" if kind == "auto" else kind
    return type(cls.__name__, (cls,), {
        "header_timeout_s": api.header_timeout_s, "max_connections": api.max_connections,
    })  # fmt: skip
