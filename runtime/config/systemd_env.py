"""What systemd tells the service through its environment: directories and credentials.

Under the packaged unit (systemd/headframe.service) the daemon runs as the unprivileged
``headframe`` user, so config.py's root defaults (/etc, /var/lib, /var/cache) would not
apply; systemd instead exports the directories it created for the unit
(``ConfigurationDirectory=`` -> ``$CONFIGURATION_DIRECTORY`` and so on, see
systemd.exec(5)). Secrets arrive through ``LoadCredential=`` as files in
``$CREDENTIALS_DIRECTORY`` that only this service can read. This module turns both into
plain paths for config.py; outside systemd every function returns None and nothing changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

#: Credential ids the unit loads (LoadCredential=<id>:/etc/headframe/credentials/<id>).
API_TOKENS_CREDENTIAL = "api-tokens"
MQTT_PASSWORD_CREDENTIAL = "mqtt-password"


def _directory(name: str, env: Mapping[str, str] | None) -> Path | None:
    """The first entry of a systemd directory variable (colon-separated when a unit lists
    several directories of one kind); None when unset, empty or not absolute."""
    value = (os.environ if env is None else env).get(name, "")
    first = value.split(":", 1)[0]
    return Path(first) if first.startswith("/") else None


def configuration_directory(env: Mapping[str, str] | None = None) -> Path | None:
    return _directory("CONFIGURATION_DIRECTORY", env)


def state_directory(env: Mapping[str, str] | None = None) -> Path | None:
    return _directory("STATE_DIRECTORY", env)


def cache_directory(env: Mapping[str, str] | None = None) -> Path | None:
    return _directory("CACHE_DIRECTORY", env)


def credentials_directory(env: Mapping[str, str] | None = None) -> Path | None:
    return _directory("CREDENTIALS_DIRECTORY", env)


def credential_file(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The file holding credential ``name``, or None when it is missing or blank.

    Blank counts as absent: the unit's SetCredential= fallback is a lone newline so that a
    site without that secret still starts (systemd 252 rejects an empty literal).
    """
    directory = credentials_directory(env)
    if directory is None:
        return None
    path = directory / name
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("credential %s unreadable: %s", path, e)
        return None
    return path if content.strip(b" \t\r\n\x00") else None


def resolve_credential(path: Path | None, env: Mapping[str, str] | None) -> Path | None:
    """A relative secret path names a credential (``tokens_file = "api-tokens"``)."""
    directory = credentials_directory(env)
    if path is None or path.is_absolute() or directory is None:
        return path
    return directory / path
