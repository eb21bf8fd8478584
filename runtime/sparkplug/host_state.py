"""The primary host's STATE as one session of the edge node believes it.

Spec 3.0 (section 5.11): ``spBv1.0/STATE/<host_id>`` carries ``{"online": bool,
"timestamp": ms}``; a STATE older than the one in force is ignored. Taken literally, a
single forged STATE stamped years ahead would outrank every real one until a restart, so
two bounds apply here: a timestamp more than ``max_ahead_s`` ahead of this box's clock is
not believed, and the one in force is forgotten when a session starts (``reset``).
Problems are counted (``state_ignored``) and logged through a ``LimitedLog``: whoever may
write the topic may repeat them endlessly. Only the host's own client should be able to
(docs/mqtt.md, the Sparkplug ACL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

from runtime.mqtt.limited_log import LimitedLog

log = logging.getLogger(__name__)


class HostState:
    def __init__(
        self, max_ahead_s: float, counters: dict[str, int], clock: Callable[[], float] = time.time
    ) -> None:
        self.max_ahead_s, self.counters, self.clock = max_ahead_s, counters, clock
        self._ts = -1  # the newest timestamp taken in this session
        self._log = LimitedLog(log)

    def reset(self) -> None:
        """A new session: spec 3.0 compares STATEs within a session, not across them."""
        self._ts = -1

    def read(self, body: bytes) -> bool | None:
        """The host's ``online`` flag to act on, or None when this STATE is ignored."""
        try:
            doc = orjson.loads(body)
            online, ts = doc["online"], int(doc.get("timestamp", 0))
            if not isinstance(online, bool):
                raise ValueError("online is not a boolean")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            self._ignored("json", "a STATE message that is not 3.0 JSON: %s", str(e)[:200])
            return None
        ahead_s = ts / 1000.0 - self.clock()
        if ahead_s > self.max_ahead_s:
            # A forgery, or a host whose clock is wrong: believed, it would outrank every
            # real STATE until a restart.
            self._ignored("ahead", "a STATE %.0f s ahead of this box's clock (more than "
                          "sparkplug.state_max_ahead_s = %g): a forgery, or the clocks "
                          "disagree", ahead_s, self.max_ahead_s)  # fmt: skip
            return None
        if ts < self._ts:
            return None  # older than the one in force (spec 3.0: compare timestamps)
        self._ts = ts
        return online

    def _ignored(self, kind: str, message: str, *args: object) -> None:
        self.counters["state_ignored"] += 1
        self._log.note(kind, "sparkplug: ignored " + message, *args)
