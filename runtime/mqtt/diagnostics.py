"""What an MQTT session says when the broker will not keep it: the one refusal table, the
log-once rule and the check for a session the broker keeps closing. Every user of
runtime.mqtt.connection (the bridge, the Sparkplug edge node, the stream bindings) gets
the same words and the same restraint: a broker that is down for an hour must not fill
the journal, and a refusal must say what to fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# CONNACK / DISCONNECT reason codes that a retry will not cure soon: back off slowly.
REFUSALS = {
    133: "the broker rejected the client id",
    134: "bad user name or password",
    135: "not authorised (wrong user name or password, or not allowed to connect)",
    138: "banned by the broker",
    140: "bad authentication method",
}
TAKEN_OVER = 142  # another client connected with our client id
SHORT_SESSION_S = 5.0  # a session closed sooner than this after it began is "short"
FLAPPING_AFTER = 3  # short sessions in a row that mean "someone else has our client id"
REPEAT_AFTER_S = 300.0  # the same message is said again at its level after this long
_FIX_ID = "give each box its own mqtt.node or mqtt.client_id"


class LogOnce:
    """Says each message once at its level; repeats of it within ``REPEAT_AFTER_S`` go to
    DEBUG. ``reset()`` (a session that was accepted) lets every message be said again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._said: dict[str, float] = {}

    def say(self, level: int, message: str) -> bool:
        """Log ``message``; True when it went out at ``level``, False when only at DEBUG."""
        now = self._clock()
        when = self._said.get(message)
        if when is not None and now - when <= REPEAT_AFTER_S:
            log.debug("%s", message)
            return False
        if len(self._said) > 64:  # messages carry reasons: keep the memory bounded
            self._said.clear()
        self._said[message] = now
        log.log(level, "%s", message)
        return True

    def reset(self) -> None:
        self._said.clear()


class Diagnostics:
    """One session's account of its trouble: ``failures`` (attempts that failed),
    ``last_error`` (why the last one did; None once accepted), and the log lines, each
    prefixed with the session's ``name`` ("mqtt", "sparkplug", "streams")."""

    def __init__(self, name: str, client_id: str, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.client_id = client_id
        self.failures = 0
        self.last_error: str | None = None
        self.short_sessions = 0  # sessions in a row the broker closed right after accepting
        self._once = LogOnce(clock)

    def failed(self, message: str) -> None:
        """An attempt failed: counted, and said once at WARNING."""
        self.failures += 1
        self.last_error = message
        self._once.say(logging.WARNING, f"{self.name}: {message} (retrying with back-off)")

    def accepted(self) -> None:
        """A CONNACK that let us in: after a good session, the same trouble is worth saying
        again."""
        self.last_error = None
        self._once.reset()

    def refused(self, code: int, reason: str, where: str) -> str:
        """A CONNACK that refused us: the reason an operator can act on."""
        why = REFUSALS.get(code) or reason
        self.failed(f"broker {where} refused us: {why}")
        return why

    def disconnected(self, code: int) -> str | None:
        """The broker ended the session with ``code``: the refusal it means (to be retried on
        the slow schedule), or None for an ordinary loss."""
        if code == TAKEN_OVER:
            self._once.say(
                logging.ERROR,
                f"{self.name}: another client connected with our client id "
                f"{self.client_id!r} and took the session over; {_FIX_ID}",
            )
            return "client id in use"
        why = REFUSALS.get(code)
        if why is not None:
            self._once.say(logging.ERROR, f"{self.name}: the broker disconnected us: {why}")
        return why

    def subscription_refused(self, topic: str, reason: object) -> None:
        self._once.say(
            logging.ERROR,
            f"{self.name}: the broker refused the subscription to {topic}: {reason} "
            "(check its ACL)",
        )

    def session_ended(self, accepted: bool, lasted_s: float) -> str | None:
        """One attempt ended. A session the broker keeps closing right after accepting it
        is almost always a second client with our client id (Mosquitto closes the older one
        without a reason code), sometimes an ACL that refuses our subscriptions: the
        refusal to back off slowly for, said at the third time and every fiftieth."""
        if not accepted:
            return None
        if lasted_s > SHORT_SESSION_S:
            self.short_sessions = 0
            return None
        self.short_sessions += 1
        n = self.short_sessions
        if n < FLAPPING_AFTER:
            return None
        if n == FLAPPING_AFTER or n % 50 == 0:
            log.error(
                "%s: the broker closed our session %d times in a row right after accepting "
                "it: another client is probably using our client id %r (%s), or its ACL "
                "refuses us",
                self.name,
                n,
                self.client_id,
                _FIX_ID,
            )
        return "sessions keep being closed"
