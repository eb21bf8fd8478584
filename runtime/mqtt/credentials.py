"""How the daemon proves itself to the broker: the password file and the TLS context."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from runtime.config import MqttSettings
from runtime.errors import ConfigError


def read_password(path: Path) -> str:
    """The password from ``path`` (one line). A relative path is looked up in systemd's
    $CREDENTIALS_DIRECTORY first, so ``LoadCredential=mqtt-password`` works as is."""
    candidates = [path]
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and not path.is_absolute():
        candidates.insert(0, Path(creds) / path)
    for candidate in candidates:
        try:
            return candidate.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"mqtt.password_file {candidate}: cannot read: {e.strerror}") from e
    raise ConfigError(f"mqtt.password_file {path}: file not found")


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """An SSL context for the broker, or None for plain TCP."""
    tls = settings.tls
    if tls is None:
        return None
    try:
        ctx = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
        if tls.cert_file is not None:
            ctx.load_cert_chain(
                str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
            )
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"mqtt.tls: cannot load certificates: {e}") from e
    return ctx
