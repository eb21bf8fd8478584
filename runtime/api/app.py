"""create_app(service, settings=..., context=...) -> FastAPI: the whole local HTTP API.

No globals: everything a route needs comes in through the arguments, so tests and the
daemon build as many apps as they like. Errors from runtime.errors map to one HTTP
status each and the body {"error": "..."} (OpenAI's error object under /v1/).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime import __version__
from runtime.api import kserve, metrics, openai, status, vector_stores
from runtime.api.auth import Tokens, load_tokens
from runtime.api.browser import BrowserCheck
from runtime.api.context import ServerContext
from runtime.api.errors import error_parts
from runtime.api.guard import ASGIApp, Guard, InFlight, Receive, Scope, Send, error_payload
from runtime.api.hosts import HostCheck, trusted_hosts
from runtime.config import Settings
from runtime.errors import HeadframeError, ModelNotFound, NotReady
from runtime.knowledge.grounding import Grounding
from runtime.knowledge.library import KnowledgeLibrary
from runtime.service import InferenceService, ModelSlot
from runtime.service.load_shed import LoadShed

log = logging.getLogger(__name__)


class OperatorChanges(Protocol):
    """The change path's operator pin (runtime.service.changes.ChangePath.pin)."""

    async def pin(self, app: str, variant: str | None, source: str) -> ModelSlot: ...


class SelectRequest(BaseModel):
    variant: str = Field(
        min_length=1, max_length=64, description='a variant id, or "auto" to let selection choose'
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def on_headframe_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HeadframeError)
        status_code, headers, body = error_parts(request.url.path, exc)
        if status_code >= 500 and not isinstance(exc, NotReady):
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return JSONResponse(body, status_code, headers=headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()))
            parts.append(f"{loc}: {e.get('msg')}")
        message = "invalid request: " + "; ".join(parts)
        return JSONResponse(error_payload(request.url.path, 400, message, "invalid_input"), 400)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_payload(request.url.path, exc.status_code, str(exc.detail), code),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    app.add_exception_handler(HeadframeError, on_headframe_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def create_app(
    service: InferenceService,
    *,
    settings: Settings,
    context: ServerContext | None = None,
    changes: OperatorChanges | None = None,
    tokens: Tokens | None = None,
    shed: LoadShed | None = None,
    knowledge: KnowledgeLibrary | None = None,
) -> FastAPI:
    """The FastAPI app serving ``service``: KServe v2, OpenAI, /metrics, the status page
    and the admin routes, behind the host check and the guard. ``tokens`` is the live
    token set (the daemon's, which SIGHUP refreshes); by default the ones ``settings.api``
    names, read once. ``shed`` (the daemon's one ``LoadShed``) makes the inference routes
    answer 429 while it blocks an application. ``knowledge`` (the daemon's one
    KnowledgeLibrary) adds /v1/vector_stores and grounded chat. ``changes`` (the change
    path) serves ``POST /admin/models/{app}/select``; without one there is no admin route."""
    context = context or ServerContext()
    in_flight = InFlight()

    def layers(routed: ASGIApp) -> ASGIApp:
        # The host check runs first, then the browser check (blind cross-origin requests),
        # then the guard (tokens, limits), then the infer fast path, then FastAPI.
        fast = kserve.InferFastPath(routed, service=service, shed=shed)
        guard = Guard(
            fast,
            tokens=tokens if tokens is not None else Tokens(load_tokens(settings.api)),
            max_body_bytes=settings.api.max_body_bytes,
            timeout_s=settings.api.request_timeout_s,
            in_flight=in_flight,
            max_text_body_bytes=settings.api.max_text_body_bytes,
        )
        return HostCheck(BrowserCheck(guard), trusted=trusted_hosts(settings.api))

    app = HeadframeApp(
        layers,
        title="headframe",
        version=__version__,
        description="Edge AI runtime: KServe v2 and OpenAI-compatible inference.",
        docs_url=None,  # the Swagger page pulls assets from a CDN; the box may be offline
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.include_router(kserve.router(service, shed))
    app.include_router(status.router(service, context))
    app.include_router(metrics.router(metrics.build_registry(service, context, in_flight)))
    grounding = Grounding(knowledge) if knowledge is not None else None
    app.include_router(openai.router(service, shed, grounding))
    if knowledge is not None:
        app.include_router(vector_stores.router(knowledge))

    if changes is not None:  # no change path, no admin route: nothing bypasses the pins

        @app.post("/admin/models/{model}/select", tags=["admin"], summary="Swap to a variant")
        async def select_variant(model: str, body: SelectRequest) -> dict[str, Any]:
            """Pin the variant (or return to the automatic choice), load it, switch to it,
            unload the old one; requests in flight finish on the old variant. The pin is
            kept across restarts; one that cannot load leaves the previous pin in force."""
            pin = None if body.variant == "auto" else body.variant
            try:
                slot = await changes.pin(model, pin, "http")
            except KeyError as e:
                raise ModelNotFound(str(e.args[0] if e.args else e)) from None
            return slot.to_dict()

    return app


class HeadframeApp(FastAPI):
    """FastAPI behind plain-ASGI layers (host check, guard, infer fast path) rather than
    with them inside its middleware stack: every request passes the layers, and the hot
    infer route is answered before FastAPI's own per-request work (its telemetry check
    reads the environment on every call, Starlette's error middleware wraps ``send``),
    which cost more than a small model's inference and protect nothing there.
    ``layers(routed)`` wraps FastAPI's own routing (``routed``) in those layers."""

    def __init__(self, layers: Callable[[ASGIApp], ASGIApp], **fastapi: Any) -> None:
        super().__init__(**fastapi)
        self.entry = layers(self.routed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself: routing, the OpenAPI document, error handlers."""
        await super().__call__(scope, receive, send)
