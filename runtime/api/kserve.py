"""KServe Open Inference Protocol v2 over HTTP: a thin adapter over InferenceService.

Bodies are read raw and decoded by runtime.codecs.kserve (shared with MQTT), so the
binary tensor extension and plain JSON take the same path. The request schema is
declared for the OpenAPI document only; validation is the codec's, with its clearer
messages.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from runtime import __version__
from runtime.api.errors import RELOAD_HEADER, error_parts
from runtime.api.guard import ASGIApp, Receive, Scope, Send
from runtime.backend_table import platform_of
from runtime.catalog import PackageMeta
from runtime.codecs.images import is_picture, media_type, picture_request
from runtime.codecs.kserve import (
    HEADER_LENGTH,
    InferRequest,
    decode_infer_request,
    encode_infer_response,
)
from runtime.errors import HeadframeError, InvalidInput, NotReady
from runtime.service import Answer, InferenceService, ModelSlot
from runtime.service.load_shed import LoadShed
from runtime.tensors import DATATYPES

log = logging.getLogger(__name__)

HEADER_LENGTH_B = HEADER_LENGTH.encode()
RELOAD_HEADER_B = RELOAD_HEADER.lower().encode()

_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array", "items": {}},
        "parameters": {"type": "object"},
    },
}
INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _TENSOR},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "parameters": {"type": "object"},
                                },
                            },
                        },
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            # One picture as the whole body, for models with an [images] contract.
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def model_metadata(slot: ModelSlot) -> dict[str, Any]:
    def spec(s: Any) -> dict[str, Any]:
        return {"name": s.name, "datatype": s.datatype, "shape": list(s.shape)}

    parameters: dict[str, Any] = {
        "variant": slot.variant.id,
        "backend": slot.backend_info.backend,
        "device": slot.backend_info.device,
    }
    if slot.package.meta.images:  # inputs that also take JPEG/PNG as BYTES, and how
        parameters["images"] = {n: c.model_dump() for n, c in slot.package.meta.images.items()}
    return {
        "name": slot.app,
        "versions": [slot.package.version],
        "platform": platform_of(slot.backend_info.backend),
        "inputs": [spec(s) for s in slot.schema.inputs],
        "outputs": [spec(s) for s in slot.schema.outputs],
        "parameters": parameters,
    }


INDEX_REQUEST_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"ready": {"type": "boolean"}},
                    "additionalProperties": False,
                }
            }
        },
    }
}


def repository_index(service: InferenceService, ready_only: bool = False) -> list[dict[str, Any]]:
    """Triton's repository index: every tensor application (text ones are on /v1/models)
    with its state, READY (and the version served), LOADING, or UNAVAILABLE (and why)."""
    rows: dict[str, dict[str, Any]] = {}
    slots = service.slots()
    for slot in slots:
        if slot.task != "text":
            rows[slot.app] = {"name": slot.app, "version": slot.package.version, "state": "READY"}
    if not ready_only:
        failures, serving = service.failures(), {s.app for s in slots}
        for app in service.known_apps():
            if app in failures:
                rows[app] = {"name": app, "state": "UNAVAILABLE", "reason": failures[app]}
            elif app not in serving:
                rows[app] = {"name": app, "state": "LOADING"}
    return [rows[name] for name in sorted(rows)]


def _index_ready_only(body: bytes) -> bool:
    """The optional ``{"ready": true}`` body; Triton's client sends none."""
    if not body.strip():
        return False
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not JSON: {e}") from None
    if not isinstance(doc, dict) or set(doc) - {"ready"}:
        raise InvalidInput('the body is an object with at most "ready": true or false')
    ready = doc.get("ready", False)
    if not isinstance(ready, bool):
        raise InvalidInput('"ready" is true or false')
    return ready


def _parse_header_length(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"Inference-Header-Content-Length {raw!r} is not a number") from None


def served(service: InferenceService, model: str, version: str | None) -> ModelSlot:
    """The slot for the metadata and readiness routes (inference asks the service itself)."""
    return service.slot(model, version)


async def run_infer(
    service: InferenceService,
    model: str,
    version: str | None,
    body: bytes,
    header_length: int | None,
    content_type: str | None = None,
) -> tuple[bytes, int | None, Answer]:
    """Decode, infer, encode: (response body, Inference-Header-Content-Length or None, the
    answer). A ``content_type`` of image/jpeg or image/png makes the body one picture. An
    unknown model or version is a 404 before the body is decoded (the service decodes
    once it knows the slot)."""
    if is_picture(content_type):
        media = media_type(content_type)

        def decode(meta: PackageMeta) -> InferRequest:
            return picture_request(model, meta, media, body)
    else:

        def decode(meta: PackageMeta) -> InferRequest:
            return decode_infer_request(body, header_length)

    req, answer = await service.infer_request(model, decode, version=version, protocol="kserve")
    payload, length = encode_infer_response(
        model,
        answer.version,
        answer.outputs,
        request_id=req.id,
        requested=req.outputs,
        binary_default=req.binary_output,
        labels=answer.labels,
    )
    return payload, length, answer


JSON_HEADERS = ((b"content-type", b"application/json"),)


async def answer_infer(
    service: InferenceService,
    path: str,
    model: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
    content_type: str | None,
    shed: LoadShed | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The one KServe v2 infer implementation, behind both entry points (``InferFastPath``
    and the documented FastAPI routes): the request's body and its two headers in, the
    status, headers (content-length aside) and body out, errors included. While ``shed``
    blocks the model: 429 with Retry-After, before the body is decoded. A response that
    waited for its parked model to load again carries X-Headframe-Reload-Ms."""
    try:
        if shed is not None:
            shed.check(model, "kserve")
        payload, out_length, answer = await run_infer(
            service, model, version, body, _parse_header_length(header_length), content_type
        )
    except HeadframeError as e:
        status, extra, doc = error_parts(path, e)
        if status >= 500 and not isinstance(e, NotReady):
            log.warning("POST %s: %s", path, e.message)
        headers = [*JSON_HEADERS, *((k.lower().encode(), v.encode()) for k, v in extra.items())]
        return status, headers, orjson.dumps(doc)
    reload_ms = answer.reload_ms
    if out_length is None:
        headers = list(JSON_HEADERS)
    else:
        headers = [(b"content-type", b"application/octet-stream")]
        headers.append((HEADER_LENGTH_B, str(out_length).encode()))
    if reload_ms is not None:
        headers.append((RELOAD_HEADER_B, str(reload_ms).encode()))
    return 200, headers, payload


def router(service: InferenceService, shed: LoadShed | None = None) -> APIRouter:
    """The /v2 routes for ``service``; infer sheds by ``shed``."""
    api = APIRouter(tags=["KServe v2"])

    @api.get("/v2", summary="Server metadata")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "headframe", "version": __version__, "extensions": ["binary_tensor_data"]}

    @api.get("/v2/health/live", summary="Liveness: the process answers")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready", summary="Readiness of the node, by api.readiness")
    async def ready() -> JSONResponse:
        if service.is_ready():
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "2"})

    @api.post(
        "/v2/repository/index",
        summary="Model repository index (tensor models)",
        openapi_extra=INDEX_REQUEST_SCHEMA,
    )
    async def index(request: Request) -> list[dict[str, Any]]:
        return repository_index(service, _index_ready_only(await request.body()))

    @api.get("/v2/models/{model}", summary="Model metadata")
    async def metadata(model: str) -> dict[str, Any]:
        return model_metadata(served(service, model, None))

    @api.get("/v2/models/{model}/versions/{version}", summary="Model metadata, one version")
    async def metadata_version(model: str, version: str) -> dict[str, Any]:
        return model_metadata(served(service, model, version))

    @api.get("/v2/models/{model}/ready", summary="Model readiness")
    async def model_ready(model: str) -> dict[str, Any]:
        slot = served(service, model, None)
        return {"name": model, "ready": True, "version": slot.package.version}

    @api.get("/v2/models/{model}/versions/{version}/ready", summary="Model readiness, one version")
    async def model_version_ready(model: str, version: str) -> dict[str, Any]:
        served(service, model, version)
        return {"name": model, "ready": True, "version": version}

    async def infer(model: str, version: str | None, request: Request) -> Response:
        # Reached only when InferFastPath is not in front (it answers these paths first).
        status, headers, body = await answer_infer(
            service,
            request.url.path,
            model,
            version,
            await request.body(),
            request.headers.get(HEADER_LENGTH),
            request.headers.get("content-type"),
            shed,
        )
        return Response(body, status, headers={k.decode(): v.decode() for k, v in headers})

    @api.post("/v2/models/{model}/infer", summary="Inference", openapi_extra=INFER_REQUEST_SCHEMA)
    async def infer_latest(model: str, request: Request) -> Response:
        return await infer(model, None, request)

    @api.post(
        "/v2/models/{model}/versions/{version}/infer",
        summary="Inference, one version",
        openapi_extra=INFER_REQUEST_SCHEMA,
    )
    async def infer_version(model: str, version: str, request: Request) -> Response:
        return await infer(model, version, request)

    return api


class InferFastPath:
    """Plain ASGI in front of FastAPI's router for POST .../infer, the one hot route.

    Routing and dependency solving cost more than a small model's inference, so this
    answers infer requests itself through ``answer_infer``, the one implementation the
    documented FastAPI routes (the OpenAPI document) call too.
    It sits inside the guard, so tokens and the body limit apply as everywhere."""

    def __init__(
        self, app: ASGIApp, service: InferenceService, shed: LoadShed | None = None
    ) -> None:
        self.app = app
        self.service = service
        self.shed = shed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts: list[str] = scope["path"].split("/") if scope["type"] == "http" else []
        # ["", "v2", "models", m, "infer"] or ["", "v2", "models", m, "versions", v, "infer"]
        if (
            scope.get("method") != "POST"
            or len(parts) not in (5, 7)
            or parts[1:3] != ["v2", "models"]
            or parts[-1] != "infer"
            or (len(parts) == 7 and parts[4] != "versions")
            or not all(parts[3:-1])
        ):
            await self.app(scope, receive, send)
            return
        model, version = parts[3], (parts[5] if len(parts) == 7 else None)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw_length = raw_type = None
        for k, v in scope["headers"]:
            if k == HEADER_LENGTH_B:
                raw_length = v.decode("latin-1")
            elif k == b"content-type":
                raw_type = v.decode("latin-1")
        status, headers, body = await answer_infer(
            self.service,
            scope["path"],
            model,
            version,
            b"".join(chunks),
            raw_length,
            raw_type,
            self.shed,
        )
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
