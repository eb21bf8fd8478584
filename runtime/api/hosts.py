"""The trusted-host check: which Host headers the HTTP API answers, against DNS rebinding.

A web page from evil.example can make its own name resolve to 127.0.0.1 and then talk
to a server on the operator's loopback as if it were its own origin (and reach /admin).
What it cannot change is the Host header, which still says evil.example. So a server
bound to loopback answers only requests addressed to a loopback name (``localhost``,
127.0.0.0/8, ``[::1]``) plus the names in ``api.trusted_hosts``; a server bound to
another address checks only when ``api.trusted_hosts`` is set (it needs tokens anyway).
``"*"`` in the list turns the check off. A request without a Host header (HTTP/1.0)
is not a browser's and passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runtime.api.auth import is_loopback
from runtime.api.guard import ASGIApp, Receive, Scope, Send, send_error
from runtime.config import ApiSettings

MAX_REMEMBERED_HOSTS = 256


@dataclass(frozen=True)
class TrustedHosts:
    """Loopback names always, plus ``names`` (exact) and ``suffixes`` (``*.example.com``)."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> TrustedHosts:
        names, suffixes = set(), []
        for entry in entries:
            name = _normalise(entry)
            if name.startswith("*."):
                suffixes.append(name[1:])  # ".example.com"
            else:
                names.add(name)
        return cls(frozenset(names), tuple(suffixes))

    def allows(self, host_header: str) -> bool:
        name = host_name(host_header)
        return (
            is_loopback(name)  # localhost and loopback addresses
            or name in self.names
            or any(name.endswith(s) for s in self.suffixes)
        )


def trusted_hosts(api: ApiSettings) -> TrustedHosts | None:
    """The policy for these settings; None means any Host is answered."""
    if api.trusted_hosts is None:
        return TrustedHosts() if is_loopback(api.host) else None
    if "*" in api.trusted_hosts:
        return None
    return TrustedHosts.of(api.trusted_hosts)


def _normalise(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name


def host_name(header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower-cased."""
    header = header.strip()
    if header.startswith("["):  # [::1]:8080
        end = header.find("]")
        return _normalise(header[1:end] if end > 0 else header)
    if header.count(":") == 1:  # name:port (more colons: a bare IPv6 literal)
        header = header.split(":", 1)[0]
    return _normalise(header)


class HostCheck:
    """Plain ASGI: answers 400 to a request whose Host this server does not trust."""

    def __init__(self, app: ASGIApp, *, trusted: TrustedHosts | None) -> None:
        self.app = app
        self.trusted = trusted
        # Host header -> verdict: clients repeat theirs, and parsing an address per
        # request cost more than the rest of the check. Bounded: cleared when full.
        self._verdicts: dict[bytes, bool] = {}

    def _allows(self, host: bytes) -> bool:
        assert self.trusted is not None
        verdict = self._verdicts.get(host)
        if verdict is None:
            if len(self._verdicts) >= MAX_REMEMBERED_HOSTS:
                self._verdicts.clear()
            verdict = self._verdicts[host] = self.trusted.allows(host.decode("latin-1"))
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        if host is None or self._allows(host):
            await self.app(scope, receive, send)
            return
        shown = host.decode("latin-1")[:100]
        await send_error(
            send,
            scope["path"],
            400,
            f"Host {shown!r} is not a name this server answers to (add it to "
            "api.trusted_hosts to allow it)",
            "untrusted_host",
        )
