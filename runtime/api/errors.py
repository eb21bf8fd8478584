"""One mapping from runtime.errors to HTTP: status code, Retry-After, JSON body.

Shared by the FastAPI exception handlers and the KServe fast path so both answer alike.
"""

from __future__ import annotations

import math

from runtime.api.guard import error_payload
from runtime.errors import (
    BackendLoadError,
    BackendUnavailable,
    Busy,
    HeadframeError,
    InferenceFailed,
    InvalidInput,
    MetadataError,
    ModelNotFound,
    NotReady,
)

# On a response that waited for its idle-unloaded (parked) model to load again
# (the answer's reload_ms, runtime.service.answer): the KServe and OpenAI routes add it.
RELOAD_HEADER = "X-Headframe-Reload-Ms"

STATUS_BY_ERROR: dict[type[HeadframeError], int] = {
    InvalidInput: 400,
    ModelNotFound: 404,
    Busy: 429,
    NotReady: 503,
    InferenceFailed: 500,
    BackendLoadError: 409,
    BackendUnavailable: 409,
    MetadataError: 409,
}


def status_for(exc: HeadframeError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def retry_after(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up (a client told 0 would come straight back)."""
    return str(max(1, math.ceil(seconds)))


def error_parts(path: str, exc: HeadframeError) -> tuple[int, dict[str, str], dict[str, object]]:
    """(status, extra headers, JSON body) for ``exc`` raised while serving ``path``."""
    headers = {}
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        headers["Retry-After"] = retry_after(retry)
    return status_for(exc), headers, error_payload(path, exc.message, exc.code)
