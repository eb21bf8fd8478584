"""Noticing that an HTTP client has gone before its answer was sent.

uvicorn does not cancel a request's task when the client disconnects (an HTTP/1.1 server
only learns it by reading the socket, which ASGI leaves to the app), so a request nobody
waits for any more would keep its model's worker busy to the end: decoding 60 pictures
after the client's own timeout, say. ``Hangup`` reads ``receive`` once the request body
has been read (after that ASGI has nothing to deliver but ``http.disconnect``) and, if
the client goes before the answer is complete, cancels the request's task; the service
then abandons the work it had queued for it (runtime.images.step.ImageStep.abandon).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class Hangup:
    """One request's watch. Create inside the request's task."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._watch: asyncio.Task[None] | None = None
        self.answered = False  # the last byte of the answer is on its way
        self.gone = False  # the client left first; its task was cancelled for it

    def body_read(self) -> None:
        """The request body is complete: from now on, a message means the client left."""
        if self._watch is None and self._task is not None:
            self._watch = asyncio.create_task(self._wait(), name="http-hangup")

    async def _wait(self) -> None:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.answered and self._task:
            self.gone = True
            self._task.cancel()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    def swallow(self) -> bool:
        """After CancelledError: True when this watch caused it (the caller has gone, so
        there is nobody to answer), and the task is no longer being cancelled."""
        if not self.gone or self._task is None:
            return False
        with contextlib.suppress(AttributeError):  # uncancel: Python 3.11+
            self._task.uncancel()
        return True
