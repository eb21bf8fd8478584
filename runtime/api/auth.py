"""API tokens, their scopes, and the bind rule: loopback is open, anything else needs a token.

Tokens come from ``api.tokens`` and ``api.tokens_file`` (one per line, # comments). A
token may do what its scopes say:

- ``infer``: every route but ``/admin/``: inference (KServe, OpenAI, embeddings, vector
  store search), the model lists, ``/status``, ``/metrics`` and the status page;
- ``admin``: ``/admin/``: what changes what the box runs (the variant select that
  ``headframe models use`` calls).

A line ``scopes=infer TOKEN`` (or ``scopes=infer,admin TOKEN``) gives a token those
scopes. A bare line (``TOKEN``, the only form before scopes existed) keeps every right a
token had then: both scopes. So an existing file keeps working after an upgrade, and a
site restricts a token by rewriting its line. The same syntax holds in ``api.tokens``.

Tokens are compared with hmac.compare_digest against every configured token, so the
time taken does not say how much of a guess was right. ``Tokens`` is the live set the
HTTP guard checks; the daemon replaces its contents on SIGHUP, so a rotated token file
(scopes included) takes effect without a restart (the old token is refused from that
moment). A valid token without the scope a route needs is answered 403, not 401.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.config import ApiSettings
from runtime.errors import ConfigError

INFER = "infer"
ADMIN = "admin"
SCOPES = (INFER, ADMIN)
EVERY_SCOPE = frozenset(SCOPES)
SCOPES_KEY = "scopes="
ADMIN_PREFIX = "/admin"
# What each scope lets a token use, in words (the 403's message).
SCOPE_ROUTES = {INFER: "the inference and status routes", ADMIN: "the /admin/ routes"}


@dataclass(frozen=True)
class ApiToken:
    """One configured token and its scopes; ``repr`` never shows the secret."""

    secret: bytes = field(repr=False)
    scopes: frozenset[str] = EVERY_SCOPE


def required_scope(path: str) -> str:
    """The scope a request path needs: ``admin`` under /admin/, ``infer`` elsewhere."""
    return ADMIN if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/") else INFER


def scope_refusal(needed: str) -> str:
    """The 403's message: what the token lacks and how a site grants it (never the token)."""
    return (
        f"this API token may not use {SCOPE_ROUTES[needed]}: it lacks the {needed!r} scope "
        f"(a tokens-file line 'scopes={needed} TOKEN' grants it; a bare token has every scope)"
    )


def parse_token(text: str, where: str) -> ApiToken | None:
    """One tokens-file line or ``api.tokens`` entry: None for a blank line or a comment;
    ConfigError naming ``where`` (never the token) for a scoped line that is wrong."""
    line = text.strip()
    if not line or text[0] == "#":
        return None
    if not line.startswith(SCOPES_KEY):
        return ApiToken(line.encode("utf-8"))  # a bare token: every scope, as before
    parts = line.split()
    if len(parts) != 2:
        raise ConfigError(f"{where}: a scoped token is 'scopes=infer[,admin] TOKEN' "
                          "(one token, no spaces in it)")  # fmt: skip
    names = [n.strip() for n in parts[0][len(SCOPES_KEY) :].split(",")]
    unknown = [n for n in names if n not in SCOPES]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown)
        raise ConfigError(f"{where}: unknown scope {shown} (known: {', '.join(SCOPES)})")
    return ApiToken(parts[1].encode("utf-8"), frozenset(names))


def read_tokens_file(file: Path, what: str = "API tokens file") -> list[ApiToken]:
    """Every token in ``file``; ConfigError naming it if it cannot be read."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: cannot read the {what}: {e}") from e
    found = (parse_token(ln, f"{file}: line {n}") for n, ln in enumerate(text.splitlines(), 1))
    return [t for t in found if t is not None]


def load_tokens(api: ApiSettings) -> list[ApiToken]:
    """Every configured token with its scopes; ConfigError naming the file (and line) if
    it cannot be read or a line is wrong."""
    inline = (parse_token(t.get_secret_value(), f"api.tokens[{i}]")
              for i, t in enumerate(api.tokens))  # fmt: skip
    tokens = [t for t in inline if t is not None]
    if api.tokens_file is not None:
        tokens += read_tokens_file(api.tokens_file)
    return tokens


def pick_token(tokens: Iterable[ApiToken], scope: str) -> ApiToken | None:
    """The first token with ``scope``; else the first at all (the daemon then says, in
    a 403, which scope it lacks); None when there is none."""
    listed = list(tokens)
    return next((t for t in listed if scope in t.scopes), listed[0] if listed else None)


class Tokens:
    """The tokens in force right now: read by the guard on every request, replaced whole
    by ``replace`` (one assignment, so a request sees the old set or the new one)."""

    def __init__(self, tokens: Sequence[ApiToken] = ()) -> None:
        self._tokens: tuple[ApiToken, ...] = tuple(tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def replace(self, tokens: Sequence[ApiToken]) -> None:
        self._tokens = tuple(tokens)

    def scopes_of(self, header: bytes | None) -> frozenset[str] | None:
        """The scopes of the token in "Bearer <token>"; None when it is no token in force."""
        return match(header, self._tokens)

    def accepts(self, header: bytes | None) -> bool:
        """True if ``header`` is "Bearer <a token in force>"."""
        return self.scopes_of(header) is not None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, tokens: Sequence[ApiToken]) -> None:
    """Refuse to serve beyond this machine without at least one token."""
    if not tokens and not is_loopback(host):
        raise ConfigError(
            f"api.host is {host!r}, which other machines can reach, and no API token is "
            "configured: set api.tokens or api.tokens_file (or bind 127.0.0.1)"
        )


def match(header: bytes | None, tokens: Sequence[ApiToken]) -> frozenset[str] | None:
    """The scopes of ``header``'s token ("Bearer <token>") among ``tokens`` (a token
    listed twice has both lines' scopes); None if it is none of them. Constant time in
    the token's content: every token is compared every time."""
    if not header or header[:7].lower() != b"bearer ":
        return None
    given = header[7:].strip()
    found: frozenset[str] | None = None
    for t in tokens:  # no early exit
        if hmac.compare_digest(given, t.secret):
            found = t.scopes | (found or frozenset())
    return found


def token_ok(header: bytes | None, tokens: Sequence[ApiToken]) -> bool:
    """True if ``header`` is "Bearer <one of tokens>", whatever its scopes."""
    return match(header, tokens) is not None
