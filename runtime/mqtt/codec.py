"""MQTT payloads: the checks every request passes, and the reply envelope.

Requests reuse the HTTP codecs (runtime.codecs.kserve for tensors, runtime.codecs.openai
for chat, runtime.codecs.images for a picture sent with an image/* Content Type). Before
those run, a JSON payload must be non-empty, within the size limit, UTF-8, JSON, an object,
and nested no deeper than the limit; a picture only within the size limit. Every reply
is ``{"status": "ok", "data": ...}`` or ``{"status": "error", "error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from runtime.codecs.nesting import depth_exceeds
from runtime.errors import HeadframeError, InvalidInput


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


def check_size(payload: bytes, *, max_bytes: int) -> None:
    """The size limit, for every payload (a picture's too: it is not JSON)."""
    if len(payload) > max_bytes:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes is over the {max_bytes}-byte limit")


def check_bytes(payload: bytes, *, max_bytes: int) -> None:
    """Empty, size and UTF-8: the checks every payload gets before any parse."""
    if not payload:
        raise InvalidInput("empty payload: send a JSON object")
    check_size(payload, max_bytes=max_bytes)
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"payload is not UTF-8 (byte {e.start})") from None


def _parse(payload: bytes, max_depth: int, brackets: int) -> dict[str, Any]:
    """Parse a payload that passed check_bytes; ``brackets`` is its count of [ and {."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        if "recursion" in str(e).lower():
            raise InvalidInput(f"payload nests deeper than {max_depth} levels") from None
        raise InvalidInput(f"payload is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("payload must be a JSON object")
    if brackets > max_depth and depth_exceeds(doc, max_depth):
        raise InvalidInput(f"payload nests deeper than {max_depth} levels")
    return doc


def parse_json_object(payload: bytes, *, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """The request as a dict, or InvalidInput saying exactly what is wrong."""
    check_bytes(payload, max_bytes=max_bytes)
    # Counting brackets is cheap and rules out deep nesting for nearly every request.
    return _parse(payload, max_depth, payload.count(b"[") + payload.count(b"{"))


def ok_body(data: Any) -> bytes:
    return orjson.dumps({"status": "ok", "data": data}, option=orjson.OPT_SERIALIZE_NUMPY)


def ok_body_raw(data_json: bytes) -> bytes:
    """The ok envelope around already-encoded JSON (saves decoding the response again)."""
    return b'{"status":"ok","data":' + data_json + b"}"


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"status": "error", "error": {"code": code, "message": message}})


def error_from(exc: BaseException) -> bytes:
    if isinstance(exc, HeadframeError):
        return error_body(exc.code, exc.message)
    return error_body("internal", f"internal error: {type(exc).__name__}")
