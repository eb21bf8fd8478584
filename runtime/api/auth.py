"""API tokens and the bind rule: loopback is open, anything else needs a token.

Tokens come from ``api.tokens`` and ``api.tokens_file`` (one per line, # comments).
They are compared with hmac.compare_digest against every configured token, so the
time taken does not say how much of a guess was right. ``Tokens`` is the live set the
HTTP guard checks; the daemon replaces its contents on SIGHUP, so a rotated token file
takes effect without a restart (the old token is refused from that moment).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from runtime.config import ApiSettings
from runtime.errors import ConfigError


def load_tokens(api: ApiSettings) -> list[bytes]:
    """Every configured token as bytes; ConfigError naming the file if it cannot be read."""
    tokens = [t.get_secret_value() for t in api.tokens]
    if api.tokens_file is not None:
        try:
            text = api.tokens_file.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{api.tokens_file}: cannot read the API tokens file: {e}") from e
        tokens += [ln.strip() for ln in text.splitlines() if ln.strip() and ln[0] != "#"]
    tokens = [t for t in tokens if t]
    return [t.encode("utf-8") for t in tokens]


class Tokens:
    """The tokens in force right now: read by the guard on every request, replaced whole
    by ``replace`` (one assignment, so a request sees the old set or the new one)."""

    def __init__(self, tokens: Sequence[bytes] = ()) -> None:
        self._tokens: tuple[bytes, ...] = tuple(tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def replace(self, tokens: Sequence[bytes]) -> None:
        self._tokens = tuple(tokens)

    def accepts(self, header: bytes | None) -> bool:
        """True if ``header`` is "Bearer <a token in force>"."""
        return token_ok(header, self._tokens)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, tokens: Sequence[bytes]) -> None:
    """Refuse to serve beyond this machine without at least one token."""
    if not tokens and not is_loopback(host):
        raise ConfigError(
            f"api.host is {host!r}, which other machines can reach, and no API token is "
            "configured: set api.tokens or api.tokens_file (or bind 127.0.0.1)"
        )


def token_ok(header: bytes | None, tokens: Sequence[bytes]) -> bool:
    """True if ``header`` is "Bearer <one of tokens>"; constant time in the token's content."""
    if not header or header[:7].lower() != b"bearer ":
        return False
    given = header[7:].strip()
    ok = False
    for t in tokens:  # no early exit: every token is compared every time
        ok |= hmac.compare_digest(given, t)
    return ok
