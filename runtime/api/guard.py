"""The HTTP guard, a plain ASGI middleware: bearer tokens and their scopes (auth.py), the
body limit, the time limit.

The body limit is ``api.max_body_bytes``, and the tighter ``api.max_text_body_bytes`` on
the OpenAI routes (/v1/), whose JSON is parsed on the event loop. A client that leaves
before its answer has its request cancelled (runtime.api.hangup), so the work queued for
it stops.

Plain ASGI rather than Starlette's BaseHTTPMiddleware because it runs on every request
and costs next to nothing this way. The time limit covers the time to the first byte
of the response, so a long token stream (SSE) is not cut once it has started.
A body over the limit is answered 413 even when the app catches the guard's signal
and answers something else (FastAPI turns any error while reading a body that a route
parses into a model into its own 400 "error parsing the body").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

from runtime.api.auth import Tokens, required_scope, scope_refusal
from runtime.api.hangup import Hangup
from runtime.codecs.openai import error_body, error_type

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
TEXT_PREFIX = "/v1/"  # the OpenAI routes: api.max_text_body_bytes


def error_payload(path: str, status: int, message: str, code: str) -> dict[str, Any]:
    """{"error": "..."} for KServe and the rest; OpenAI's error object under /v1/."""
    if path.startswith("/v1/"):
        return error_body(message, error_type(status), None, code)
    return {"error": message}


class _BodyTooLarge(Exception):
    pass


async def send_error(
    send: Send,
    path: str,
    status: int,
    message: str,
    code: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = orjson.dumps(error_payload(path, status, message, code))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class InFlight:
    """HTTP requests inside the app right now (for /metrics and orderly shutdown)."""

    def __init__(self) -> None:
        self.count = 0


class Guard:
    """Checks tokens (when any are configured), bounds the body and the time to respond."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Tokens,
        max_body_bytes: int,
        timeout_s: float,
        open_paths: frozenset[str] = OPEN_PATHS,
        in_flight: InFlight | None = None,
        max_text_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.in_flight = in_flight or InFlight()
        self.tokens = tokens  # live: the daemon replaces them on SIGHUP
        self.max_body = max_body_bytes
        # The OpenAI routes' JSON is parsed on the event loop (FastAPI's body parsing):
        # bounded tighter than pictures and binary tensors, which are not.
        self.max_text_body = max_text_body_bytes
        self.timeout_s = timeout_s
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        if self.tokens and path not in self.open_paths:
            scopes = self.tokens.scopes_of(headers.get(b"authorization"))
            if scopes is None:
                await send_error(
                    send,
                    path,
                    401,
                    "missing or wrong API token (Authorization: Bearer ...)",
                    "unauthorized",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            needed = required_scope(path)
            if needed not in scopes:  # a valid token, not for this route: 403, not 401
                await send_error(send, path, 403, scope_refusal(needed), "forbidden")
                return
        limit, setting = self.max_body, "api.max_body_bytes"
        if self.max_text_body is not None and path.startswith(TEXT_PREFIX):
            limit, setting = min(limit, self.max_text_body), "api.max_text_body_bytes"
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, path, 400, "Content-Length is not a number", "invalid_input")
                return
            if declared > limit:
                await self._too_large(send, path, limit, setting)
                return
        received = 0
        too_large = False
        hangup = Hangup(receive)

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
                if not message.get("more_body"):
                    hangup.body_read()
            return message

        started = False
        self.in_flight.count += 1
        try:
            async with asyncio.timeout(self.timeout_s) as deadline:

                async def tracked_send(message: Message) -> None:
                    nonlocal started
                    if too_large:  # the app answered in spite of the limit: 413 instead
                        if message["type"] == "http.response.start" and not started:
                            started = True
                            await self._too_large(send, path, limit, setting)
                        return
                    if message["type"] == "http.response.start":
                        started = True
                        deadline.reschedule(None)  # a stream may take as long as it needs
                    elif message["type"] == "http.response.body" and not message.get("more_body"):
                        hangup.answered = True
                    await send(message)

                await self.app(scope, limited_receive, tracked_send)
        except asyncio.CancelledError:
            if not hangup.swallow():
                raise
            # the client left before its answer: nobody to send one to
        except _BodyTooLarge:
            if not started:
                await self._too_large(send, path, limit, setting)
        except TimeoutError:
            if started:
                raise
            await send_error(
                send,
                path,
                504,
                f"no response within {self.timeout_s:g} s (api.request_timeout_s)",
                "timeout",
            )
        finally:
            hangup.close()
            self.in_flight.count -= 1

    async def _too_large(self, send: Send, path: str, limit: int, setting: str) -> None:
        await send_error(
            send,
            path,
            413,
            f"request body over the limit of {limit} bytes ({setting})",
            "too_large",
        )
