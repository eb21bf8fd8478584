"""The note a request leaves when it waited for its parked model to load again.

``InferenceService`` unloads an idle application's model (``park``) and loads it again
on the next request; that request waits, and its response says so (HTTP header
X-Headframe-Reload-Ms, MQTT user property ``reload_ms``). The service writes the note in
the caller's task (a context variable: each HTTP request is its own task; an MQTT worker
task clears it before each job), the transport reads it right after its call to the
service. The service and the transports share this module, not each other's.
"""

from __future__ import annotations

from contextvars import ContextVar

_RELOAD_MS: ContextVar[int | None] = ContextVar("headframe_reload_ms", default=None)


def note_reload(waited_ms: int | None) -> None:
    """The service: this request waited ``waited_ms`` for a reload (None: it did not)."""
    _RELOAD_MS.set(waited_ms)


def reload_waited_ms() -> int | None:
    """Milliseconds the current task's last ``infer``/``generate`` call waited for its
    parked application to load again; None when it found the model loaded."""
    return _RELOAD_MS.get()


def clear_reload_note() -> None:
    """Before a task serves its next request (an MQTT worker runs one job after another)."""
    _RELOAD_MS.set(None)
