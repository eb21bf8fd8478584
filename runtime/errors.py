"""Errors that cross module boundaries.

``code`` is the one vocabulary HTTP and MQTT share (MQTT replies carry it as the error
code). Each class also carries its HTTP status (``status``) and, where the client should
come back later, ``retry_after_s`` (HTTP Retry-After): every HTTP route (KServe, OpenAI,
admin) answers an error with these, so one class has one status everywhere.

How the statuses are chosen: 4xx when the client can change its request to succeed
(400 bad input, 404 unknown application, 429 busy: come back after Retry-After); 5xx when
the request was fine and the box failed it (503 with Retry-After while a model is
loading; 500 otherwise). A variant that cannot load (``BackendLoadError``,
``BackendUnavailable``) or a package that will not read (``MetadataError``) is 500. They
reach HTTP when the operator's select (``POST /admin/models/{app}/select``, ``headframe
models use``) asks for a variant the box then fails to open (a corrupted file, a runtime or
device missing); the old variant keeps serving and the message says which one failed and
why. Not 409: nothing in the request or in the application's state conflicts, and no
change to the request resolves it; the box failed at something it should be able to do,
which is what a site's monitoring counts 5xx for. Not 503: waiting does not fix it, so
there is no Retry-After either. (A parked model whose reload fails on a request is
``NotReady``, 503: the next request tries again.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class HeadframeError(Exception):
    """Base class: ``code`` is a stable machine-readable name, the message is for humans."""

    code = "internal"
    status = 500  # HTTP
    retry_after_s: float | None = None  # HTTP Retry-After, where coming back later helps

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HeadframeError):
    """A settings or profile file is invalid; the message names the file and the field."""

    code = "config"


class ProbeError(HeadframeError):
    """The hardware probe cannot read its root (not a directory, unreadable, no /proc/cpuinfo)."""

    code = "probe"


class MetadataError(HeadframeError):
    """A package.toml or variant.toml is invalid; the message names the file and the field
    (HTTP 500 when a request meets it: a bad package in the store is the box's fault)."""

    code = "metadata"


class InvalidInput(HeadframeError):
    """The request is malformed: bad JSON, shape, datatype or name (HTTP 400)."""

    code = "invalid_input"
    status = 400


class InvalidImage(InvalidInput):
    """A picture that cannot be decoded: truncated, corrupt, or neither JPEG nor PNG (400)."""

    code = "invalid_image"


class UnsupportedImage(InvalidImage):
    """A valid picture of a kind the contract cannot take: CMYK, 16 bits per sample (400)."""

    code = "unsupported_image"


class ImageTooLarge(InvalidImage):
    """A picture whose header claims more pixels than the limit (a decompression bomb) (400)."""

    code = "image_too_large"


class NoImageContract(InvalidInput):
    """Picture bytes for an input whose package declares no image contract (400)."""

    code = "no_image_contract"


class ModelNotFound(HeadframeError):
    """No such application or version is served (HTTP 404)."""

    code = "not_found"
    status = 404


class NotReady(HeadframeError):
    """The application exists but has no loaded variant yet (HTTP 503)."""

    code = "not_ready"
    status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Busy(HeadframeError):
    """The application's bounded queue is full (HTTP 429, MQTT "busy")."""

    code = "busy"
    status = 429

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Shedding(Busy):
    """The box sheds new work for now (the governor, runtime.service.load_shed): HTTP 429 with
    Retry-After; MQTT never answers it (reads of the application's requests pause)."""

    code = "shedding"


class InferenceFailed(HeadframeError):
    """The backend raised while running a valid request (HTTP 500)."""

    code = "inference_failed"


class BackendUnavailable(HeadframeError):
    """The backend's Python package is not installed, or it lacks the requested device
    (HTTP 500: see the module docstring)."""

    code = "backend_unavailable"


class BackendLoadError(HeadframeError):
    """The backend is present but could not load this variant on this device (HTTP 500:
    see the module docstring).

    From the loader, ``attempts`` lists every (variant, backend, device) tried and why
    each failed (runtime.loading.loader.LoadAttempt objects).
    """

    code = "backend_load_failed"

    def __init__(self, message: str, attempts: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


class BuildInputError(HeadframeError):
    """Bad input to a build (source, golden set, calibration set, output directory): the
    message is one line naming the file and what is wrong (CLI exit 2)."""

    code = "build_input"
    status = 400
