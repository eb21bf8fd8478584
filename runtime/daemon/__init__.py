"""The one composition root: builds every part, passes each what it needs, runs them.

Owns: ``Daemon`` (``root``), reselecting what runs after SIGHUP or a store change
(``reselect``), systemd's notify protocol (``sdnotify``) and logging set-up
(``logsetup``). Nothing imports this room but the command line.
"""

from __future__ import annotations

from runtime.daemon.root import (
    Daemon as Daemon,
)
