"""KServe Open Inference Protocol v2 over HTTP: a thin adapter over InferenceService.

Bodies are read raw and decoded by runtime.codecs.kserve (shared with MQTT), so the
binary tensor extension and plain JSON take the same path. The request schema is
declared for the OpenAPI document only; validation is the codec's, with its clearer
messages.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from runtime import __version__
from runtime.codecs.kserve import HEADER_LENGTH, decode_infer_request, encode_infer_response
from runtime.errors import InvalidInput, ModelNotFound
from runtime.service import InferenceService, ModelSlot
from runtime.tensors import DATATYPES

PLATFORMS = {"onnx": "onnxruntime_onnx", "openvino": "openvino_ir", "llama": "llama_cpp_gguf"}

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
        },
    }
}


def model_metadata(slot: ModelSlot) -> dict[str, Any]:
    def spec(s: Any) -> dict[str, Any]:
        return {"name": s.name, "datatype": s.datatype, "shape": list(s.shape)}

    return {
        "name": slot.app,
        "versions": [slot.package.version],
        "platform": PLATFORMS.get(slot.backend_info.backend, slot.backend_info.backend),
        "inputs": [spec(s) for s in slot.schema.inputs],
        "outputs": [spec(s) for s in slot.schema.outputs],
        "parameters": {
            "variant": slot.variant.id,
            "backend": slot.backend_info.backend,
            "device": slot.backend_info.device,
        },
    }


def _header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"Inference-Header-Content-Length {raw!r} is not a number") from None


def router(service: InferenceService) -> APIRouter:
    """The /v2 routes for ``service``."""
    api = APIRouter(tags=["KServe v2"])

    def served(model: str, version: str | None) -> ModelSlot:
        slot = service.slot(model)
        if version is not None and version != slot.package.version:
            raise ModelNotFound(f"{model} serves version {slot.package.version}, not {version!r}")
        return slot

    @api.get("/v2", summary="Server metadata")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "headframe", "version": __version__, "extensions": ["binary_tensor_data"]}

    @api.get("/v2/health/live", summary="Liveness: the process answers")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready", summary="Readiness: every application has a loaded variant")
    async def ready() -> JSONResponse:
        if service.is_ready():
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "2"})

    @api.get("/v2/models/{model}", summary="Model metadata")
    async def metadata(model: str) -> dict[str, Any]:
        return model_metadata(served(model, None))

    @api.get("/v2/models/{model}/versions/{version}", summary="Model metadata, one version")
    async def metadata_version(model: str, version: str) -> dict[str, Any]:
        return model_metadata(served(model, version))

    @api.get("/v2/models/{model}/ready", summary="Model readiness")
    async def model_ready(model: str) -> dict[str, Any]:
        slot = served(model, None)
        return {"name": model, "ready": True, "version": slot.package.version}

    @api.get("/v2/models/{model}/versions/{version}/ready", summary="Model readiness, one version")
    async def model_version_ready(model: str, version: str) -> dict[str, Any]:
        served(model, version)
        return {"name": model, "ready": True, "version": version}

    async def infer(model: str, version: str | None, request: Request) -> Response:
        start = time.perf_counter()
        slot = served(model, version)  # unknown model or version: 404 before any decoding
        body = await request.body()
        try:
            req = decode_infer_request(body, _header_length(request))
        except InvalidInput:
            service.stats.record(model, "kserve", "invalid_input", time.perf_counter() - start)
            raise
        outputs = await service.infer(
            model, req.inputs, version=version, outputs=req.output_names, protocol="kserve"
        )
        payload, header_length = encode_infer_response(
            model,
            slot.package.version,
            outputs,
            request_id=req.id,
            requested=req.outputs,
            binary_default=req.binary_output,
        )
        if header_length is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

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
