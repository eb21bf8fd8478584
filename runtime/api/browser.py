"""Blind requests from a browser: a web page on any site can make the browser of someone on
the box's network POST to the API (no token needed on loopback), and read nothing back but
run inference all the same. Plain ASGI, one job, in front of the guard.

A cross-origin page can send, without a CORS preflight, only a "simple" request: a
``Content-Type`` of ``text/plain``, ``application/x-www-form-urlencoded`` or
``multipart/form-data``, or none at all (a Blob body), and the browser then names the
page's ``Origin``. So a request that changes something (POST, PUT, PATCH, DELETE) must:

- carry a ``Content-Type`` the API documents for its path, when it carries one: JSON for
  the OpenAI, admin and repository routes; JSON, ``application/octet-stream`` (the binary
  tensor extension) or a picture (``image/*``) for KServe inference. Anything else is
  415 naming what to send;
- come from the API's own origin when it names one: an ``Origin`` whose host and port
  are not the request's ``Host`` (a page elsewhere, or ``null``) is 403.

Clients that are not browsers (curl, the SDKs, tritonclient, which sends no
Content-Type) send no Origin and are not affected. The API answers no CORS preflight, so
no cross-origin page can send anything else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from runtime.api.guard import ASGIApp, Receive, Scope, Send, send_error

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = frozenset({"application/json"})
INFER = frozenset({"application/json", "application/octet-stream"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _media(value: bytes) -> str:
    return value.decode("latin-1").split(";", 1)[0].strip().lower()


def accepted(path: str) -> frozenset[str]:
    """The media types the API documents for a request body on ``path``."""
    parts = path.split("/")
    if path.startswith("/v2/models/") and parts[-1] == "infer":
        return INFER
    return JSON


def _split(netloc: str) -> tuple[str, int | None]:
    """(host name, explicit port or None) of ``host[:port]``; ("", None) if unreadable."""
    parsed = urlsplit(f"//{netloc}")
    try:
        return (parsed.hostname or "").lower(), parsed.port
    except ValueError:
        return "", None


def same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Whether a browser's ``Origin`` is the API's own, the one ``Host`` names: same host
    name and port. A Host without a port (a reverse proxy on the default port, TLS ended
    there) matches an Origin on its scheme's default port."""
    parts = urlsplit(origin)
    theirs, their_port = _split(parts.netloc)
    own, own_port = _split(host_header)
    if not own or theirs != own or parts.scheme not in _DEFAULT_PORTS:
        return False
    their_port = their_port or _DEFAULT_PORTS[parts.scheme]
    if own_port is None:
        return their_port in (_DEFAULT_PORTS.get(scheme), _DEFAULT_PORTS[parts.scheme])
    return their_port == own_port


class BrowserCheck:
    """Refuses blind browser requests (see the module docstring); everything else passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in UNSAFE:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        problem = self._origin_problem(scope, headers) or self._type_problem(path, headers)
        if problem is not None:
            status, message, code = problem
            await send_error(send, path, status, message, code)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _type_problem(path: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        raw = headers.get(b"content-type")
        if raw is None:
            return None  # a client that is not a browser (tritonclient sends none)
        media = _media(raw)
        want = accepted(path)
        if media in want or (want is INFER and media.startswith("image/")):
            return None
        sends = " or ".join(sorted(want)) + (", or image/jpeg|png" if want is INFER else "")
        return (
            415,
            f"Content-Type {media or '(empty)'} is not accepted here: send {sends}",
            ("unsupported_media_type"),
        )

    @staticmethod
    def _origin_problem(scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        raw = headers.get(b"origin")
        if raw is None:
            return None
        origin = raw.decode("latin-1").strip()
        host = headers.get(b"host", b"").decode("latin-1")
        if same_origin(origin, host, scope.get("scheme", "http")):
            return None
        return (
            403,
            (
                f"cross-origin request from {origin} refused: the API takes requests from its own "
                "origin, or from clients that are not browsers"
            ),
            "forbidden",
        )
