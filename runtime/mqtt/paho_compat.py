"""Which of paho's code paths this process uses, decided once at start-up.

The fast path (runtime.mqtt.loop_client, ``FastProperties``) reaches into paho's private
API: ``paho.mqtt._packet``, ``_create_socket``, ``_sock_recv``, ``_sock_send``,
``_sock_close`` and ``_loop_rc_handle``. Those are only trusted on the minor version the
tests ran against (``TESTED``, pinned in pyproject.toml); on any other version, or when
``mqtt.paho_fast_path`` is false, the bridge uses paho's own code paths
(runtime.mqtt.plain_client): same behaviour, more system calls per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata

from runtime.config import MqttSettings

log = logging.getLogger(__name__)

TESTED = (2, 2)  # paho-mqtt minor version whose private API the fast path was tested on


@dataclass(frozen=True)
class PahoMode:
    """``fast``: use the private-API fast path; ``reason``: why, for the log and /status."""

    fast: bool
    reason: str
    version: str


def installed_version() -> str:
    try:
        return metadata.version("paho-mqtt")
    except metadata.PackageNotFoundError:  # a vendored or source install
        import paho.mqtt

        return str(getattr(paho.mqtt, "__version__", "unknown"))


def _minor(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def choose(settings: MqttSettings, version: str | None = None) -> PahoMode:
    """The mode for ``settings`` and the installed paho (or ``version``): a pure decision."""
    version = version or installed_version()
    tested = ".".join(map(str, TESTED))
    if not settings.paho_fast_path:
        return PahoMode(False, "mqtt.paho_fast_path is false: paho's own code paths", version)
    if _minor(version) != TESTED:
        return PahoMode(
            False,
            f"paho-mqtt {version} is not the tested {tested}.x: paho's own code paths",
            version,
        )
    return PahoMode(True, f"paho-mqtt {version}: the tested fast path", version)


def start_up(settings: MqttSettings) -> PahoMode:
    """The daemon's start-up check: decide, say so, and on the fast path make paho decode
    incoming properties with FastProperties (process-wide, so only the daemon does it)."""
    mode = choose(settings)
    if mode.fast:
        from runtime.mqtt import properties

        properties.install()
        log.info("mqtt: %s", mode.reason)
    elif settings.paho_fast_path:
        log.warning("mqtt: %s (pin paho-mqtt>=2.2,<2.3 for the fast path)", mode.reason)
    else:
        log.info("mqtt: %s", mode.reason)
    return mode
