"""The CLI's side of a running daemon: where it answers, calling it, and what it will do
about a change to the store (``models add``, ``models remove``).

Only the standard library's HTTP client: a command that talks to the daemon must start
as fast as ``models list``.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runtime.catalog import Store
from runtime.config import Settings

# How long `models add` waits for a daemon to answer before saying none runs.
PROBE_TIMEOUT_S = 2.0


def base_url(settings: Settings) -> str:
    """The daemon's URL from its settings (a wildcard bind is asked on loopback)."""
    api = settings.api
    host = "127.0.0.1" if api.host in ("0.0.0.0", "") else ("::1" if api.host == "::" else api.host)
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if api.tls_cert_file else "http"
    return f"{scheme}://{host}:{api.port}"


def call(
    settings: Settings,
    base: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 300,
) -> Any:
    """GET ``path`` (POST ``body`` as JSON when given) with an API token that has the
    scope ``path`` needs (``client_token``); the parsed JSON answer. Raises
    urllib.error.HTTPError on an error status, URLError or OSError when nothing answers,
    ConfigError when a tokens file cannot be read."""
    request = urllib.request.Request(
        f"{base}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"} if body is not None else {},
        method="GET" if body is None else "POST",
    )
    token = client_token(settings, path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token.decode()}")
    context = None
    if base.startswith("https") and settings.api.tls_cert_file:
        context = ssl.create_default_context(cafile=str(settings.api.tls_cert_file))
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read())


def client_token(settings: Settings, path: str) -> bytes | None:
    """The token to send for ``path``: for /admin/, the first with the admin scope in
    ``api.admin_token_file`` when set, else in the daemon's own tokens (``api.tokens``,
    ``api.tokens_file``, which the CLI can read on the box); for the rest, the first with
    the infer scope. Without a token of that scope the first is sent, and the daemon's 403
    says which scope it lacks."""
    from runtime.api.auth import ADMIN, load_tokens, pick_token, read_tokens_file, required_scope

    scope = required_scope(path)
    api = settings.api
    if scope == ADMIN and api.admin_token_file is not None:
        tokens = read_tokens_file(api.admin_token_file, "admin token file (api.admin_token_file)")
    else:
        tokens = load_tokens(api)
    token = pick_token(tokens, scope)
    return token.secret if token is not None else None


def _daemon_section(settings: Settings, base: str) -> dict[str, Any] | str | None:
    """The ``daemon`` section of the running daemon's /status; None when nothing answers,
    or the line to print when one answers but will not say (a refused token, say)."""
    from runtime.errors import HeadframeError

    try:
        doc = call(settings, base, "/status", timeout=PROBE_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        return f"the daemon at {base} answered /status with {e.code} {e.reason}: see its log"
    except (urllib.error.URLError, OSError, ValueError):
        return None
    except HeadframeError as e:  # the API tokens file cannot be read
        return f"cannot ask the daemon at {base}: {e.message}"
    section = doc.get("daemon") if isinstance(doc, dict) else None
    return section if isinstance(section, dict) else {}


def store_change_note(store: Store, app: str, effect: str) -> str:
    """One line saying what the daemon the settings (file + env) name will do about
    ``app`` now that ``store`` changed. ``effect`` is what a daemon serving that store
    will do, in words ("serves it", "stops serving it", "serves demo 1.1.0")."""
    from runtime.config import load_settings
    from runtime.errors import HeadframeError

    try:
        settings = load_settings()
    except HeadframeError as e:
        return f"cannot tell whether a daemon serves this store: {e.message}"
    base = base_url(settings)
    daemon = _daemon_section(settings, base)
    if daemon is None:
        return f"no daemon answers at {base}: start it with `headframe serve`"
    if isinstance(daemon, str):
        return daemon
    there = daemon.get("store")
    if there is not None and _same_dir(there, store.root) is False:
        return f"the daemon at {base} serves another store ({there}): it will not see this"
    configured = daemon.get("configured_applications") or []
    if configured and app not in configured:
        return (
            f"the daemon at {base} serves only the applications its settings name "
            f"({', '.join(configured)}): add [[applications]] name = {app!r} and reload it"
        )
    watch = daemon.get("store_watch_s")
    if not watch:
        return (
            f"the daemon at {base} does not watch the store: reload it "
            "(systemctl reload headframe, or send it SIGHUP)"
        )
    return f"the daemon at {base} {effect} within {watch:g} s"


def _same_dir(a: str, b: Path) -> bool | None:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return None
