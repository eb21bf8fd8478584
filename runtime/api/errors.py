"""An error from runtime.errors as HTTP: its status and Retry-After (each error class
carries both) and the JSON body. Shared by the FastAPI exception handlers, the KServe fast
path and the OpenAI routes (which give the body OpenAI's shape), so all answer alike.
"""

from __future__ import annotations

import math

from runtime.api.guard import error_payload
from runtime.errors import HeadframeError

# On a response that waited for its idle-unloaded (parked) model to load again
# (the answer's reload_ms, runtime.service.answer): the KServe and OpenAI routes add it.
RELOAD_HEADER = "X-Headframe-Reload-Ms"


def retry_after(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up (a client told 0 would come straight back)."""
    return str(max(1, math.ceil(seconds)))


def error_headers(exc: HeadframeError) -> dict[str, str]:
    """Retry-After where the error says when to come back; nothing otherwise."""
    if exc.retry_after_s is None:
        return {}
    return {"Retry-After": retry_after(exc.retry_after_s)}


def error_parts(path: str, exc: HeadframeError) -> tuple[int, dict[str, str], dict[str, object]]:
    """(status, extra headers, JSON body) for ``exc`` raised while serving ``path``."""
    return exc.status, error_headers(exc), error_payload(path, exc.status, exc.message, exc.code)
