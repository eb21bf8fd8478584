"""``BoxDescription``: what this box is, built once by the daemon after the hardware probe.

Read by the status page and the MQTT ``info`` document; nothing changes it afterwards (a
new probe means a new description).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.hardware.report import HardwareReport
    from runtime.profiles import DeviceProfile, ProfileMatch


@dataclass(frozen=True)
class BoxDescription:
    """The host name, the probe's report and the profile match (with its reasons).
    Before the probe only the host name is known: ``report`` and ``match`` are None."""

    hostname: str = field(default_factory=socket.gethostname)
    report: HardwareReport | None = None
    match: ProfileMatch | None = None

    @property
    def profile(self) -> DeviceProfile | None:
        """The profile in force (matched, or forced by settings: the match says which)."""
        return self.match.profile if self.match is not None else None
