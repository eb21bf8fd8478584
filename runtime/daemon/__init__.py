"""The one composition root: builds every part, passes each what it needs, runs them.

Owns: ``Daemon`` (``root``), what SIGHUP rebuilds and re-reads (``reload``: the settings,
the box, the loader and calibrator, built and passed to each other here), the optional
rooms behind one start/stop/status/metrics contract (``rooms``: MQTT bridge, Sparkplug
node, stream bindings, fleet runner, governor), systemd's notify protocol (``sdnotify``)
and logging set-up (``logsetup``). Nothing imports this room but the command line.
"""

from __future__ import annotations

from runtime.daemon.root import (
    Daemon as Daemon,
)
