"""OpenAI-compatible HTTP API for text applications: /v1/models, /v1/chat/completions,
/v1/completions (plain JSON or Server-Sent Events) and /v1/embeddings.

A thin adapter: bodies are decoded by runtime.codecs.openai, generation is
``service.generate(app, request)`` (the backend runs on the model's worker thread and
its chunks reach the event loop through a queue), and each chunk is written to the
socket as soon as it arrives. The ``model`` field names the application.

Errors always have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``:
400 for a bad body (including FastAPI's own validation errors, caught by the route
class below), 404 for an unknown model, 429 when the queue is full and 503 when the
model is not loaded yet (both with Retry-After). A failure after the stream started is
sent as a final ``data: {"error": ...}`` event, which OpenAI's SDKs raise as APIError.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from runtime.api.errors import RELOAD_HEADER, error_headers
from runtime.backends.base import GenerationChunk, GenerationRequest
from runtime.codecs.embeddings import EmbeddingRequest, embed
from runtime.codecs.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    StreamEncoder,
    error_body,
    error_for,
    to_generation_off_loop,
    validation_message,
)
from runtime.errors import HeadframeError, InvalidInput, ModelNotFound
from runtime.service.answer import Answer, TextAnswer
from runtime.service.load_shed import LoadShed

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
Extra = Callable[[str], dict[str, Any]]  # the answer's text -> fields for the response


class Grounder(Protocol):
    """What grounded chat needs (runtime.knowledge.grounding.Grounding)."""

    async def ground(self, service: Any, body: ChatCompletionRequest, protocol: str) -> Any: ...


class TextService(Protocol):
    """What this router needs from runtime.service.InferenceService."""

    async def generate(
        self, app: str, request: GenerationRequest, *, protocol: str = "openai"
    ) -> TextAnswer: ...

    async def embed(
        self, app: str, texts: Sequence[str], *, protocol: str = "openai"
    ) -> Answer: ...

    def slots(self) -> list[Any]: ...


def error_response(exc: HeadframeError) -> Response:
    """The error's own status and Retry-After (runtime.errors), in OpenAI's body."""
    return Response(
        orjson.dumps(error_for(exc)),
        status_code=exc.status,
        media_type="application/json",
        headers=error_headers(exc),
    )


class OpenAIRoute(APIRoute):
    """Turns FastAPI's 422 validation errors into OpenAI-shaped 400s, on these routes only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                return error_response(InvalidInput(validation_message(e.errors())))

        return route


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


_DONE = b"data: [DONE]\n\n"


def router(
    service: TextService, shed: LoadShed | None = None, grounding: Grounder | None = None
) -> APIRouter:
    """The OpenAI routes over ``service``; include with ``app.include_router(router(svc))``.
    While ``shed`` blocks a model, its chat, completions and embeddings answer 429.
    ``grounding`` (runtime.knowledge.grounding.Grounding) answers chats that name
    knowledge packs; without it such a chat is a 400."""
    r = APIRouter(route_class=OpenAIRoute, tags=["openai"])

    def reload_headers(
        answer: Answer | TextAnswer, headers: dict[str, str] | None = None
    ) -> dict[str, str]:
        """The X-Headframe-Reload-Ms header when this request waited for its parked model
        to load again (the answer says so)."""
        out = dict(headers or {})
        if answer.reload_ms is not None:
            out[RELOAD_HEADER] = str(answer.reload_ms)
        return out

    def text_apps() -> list[Any]:
        return [s for s in service.slots() if s.package.meta.task in ("text", "embedding")]

    def model_card(slot: Any) -> dict[str, Any]:
        return {
            "id": slot.app,
            "object": "model",
            "created": int(getattr(slot, "loaded_at", 0) or 0),
            "owned_by": "headframe",
        }

    @r.get("/v1/models")
    async def list_models() -> Response:
        body = {"object": "list", "data": [model_card(s) for s in text_apps()]}
        return Response(orjson.dumps(body), media_type="application/json")

    @r.get("/v1/models/{model}")
    async def get_model(model: str) -> Response:
        for s in text_apps():
            if s.app == model:
                return Response(orjson.dumps(model_card(s)), media_type="application/json")
        return error_response(ModelNotFound(f"model {model!r} does not exist"))

    async def run(
        kind: str, model: str, gen: GenerationRequest, stream: bool, include_usage: bool,
        tools: Any = None, replay: TextAnswer | None = None, extra: Extra | None = None,
    ) -> Response:  # fmt: skip
        try:
            if shed is not None:
                shed.check(model, "openai")
            answer = replay or await service.generate(model, gen, protocol="openai")
        except HeadframeError as e:
            return error_response(e)
        chunks = answer.chunks
        enc = StreamEncoder(
            kind="chat" if kind == "chat" else "text",
            model=model,
            include_usage=include_usage,
            fingerprint=answer.variant,  # the variant producing this answer
            tools=tools,
        )
        try:
            # Wait for the first chunk before answering, so that a full queue or a prompt
            # too long still gets a real status code.
            first = await anext(chunks)
        except StopAsyncIteration:
            first = GenerationChunk("", "stop")
        except HeadframeError as e:
            await _close(chunks)
            return error_response(e)
        if not stream:
            collected = [first]
            try:
                if first.finish_reason is None:
                    collected += [c async for c in chunks]
            except HeadframeError as e:
                return error_response(e)
            finally:
                await _close(chunks)
            doc = enc.response(collected)
            if extra is not None:  # grounded chat: the citations
                doc.update(extra("".join(c.text for c in collected)))
            return Response(
                orjson.dumps(doc),
                media_type="application/json",
                headers=reload_headers(answer),
            )
        return StreamingResponse(
            _events(enc, first, chunks, extra),
            media_type="text/event-stream",
            headers=reload_headers(answer, SSE_HEADERS),
        )

    @r.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> Response:
        replay, extra = None, None
        try:
            if body.knowledge is not None:  # grounded chat (runtime.knowledge.grounding)
                if grounding is None:
                    raise InvalidInput("knowledge: this box serves no knowledge packs")
                grounded = await grounding.ground(service, body, "openai")
                body, replay, extra = grounded.request, grounded.replay_answer(), grounded.extra
            gen = await to_generation_off_loop(body)
        except HeadframeError as e:
            return error_response(e)
        return await run("chat", body.model, gen, body.stream, body.include_usage,
                         body.tool_plan(), replay, extra)  # fmt: skip

    @r.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest) -> Response:
        try:
            gen = await to_generation_off_loop(body)
        except HeadframeError as e:
            return error_response(e)
        return await run("text", body.model, gen, body.stream, body.include_usage)

    @r.post("/v1/embeddings", response_model=None)
    async def embeddings(body: EmbeddingRequest) -> Response:
        try:
            if shed is not None:
                shed.check(body.model, "openai")
            out, answer = await embed(service, body, "openai")
        except HeadframeError as e:
            return error_response(e)
        return Response(
            orjson.dumps(out), media_type="application/json", headers=reload_headers(answer)
        )

    return r


async def _events(
    enc: StreamEncoder, first: GenerationChunk, chunks: AsyncIterator[GenerationChunk],
    extra: Extra | None = None,
) -> AsyncIterator[bytes]:  # fmt: skip
    """SSE bytes: one event per encoded object, written as each chunk arrives; ``extra``
    (the answer's text -> fields) goes on the object that carries the finish reason."""
    text: list[str] = []
    try:
        for obj in enc.start():
            yield _sse(obj)
        chunk: GenerationChunk | None = first
        while chunk is not None:
            text.append(chunk.text)
            for obj in enc.encode(chunk):
                if extra is not None and any(c.get("finish_reason") for c in obj["choices"]):
                    obj.update(extra("".join(text)))
                yield _sse(obj)
            if chunk.finish_reason is not None:
                break
            chunk = await anext(chunks, None)
    except HeadframeError as e:
        log.warning("stream for %s failed after it started: %s", enc.model, e.message)
        yield _sse(error_for(e))
    except Exception:
        log.exception("stream for %s failed after it started", enc.model)
        yield _sse(error_body("generation failed", "server_error", None, "internal"))
    finally:
        # Also runs when the client goes away: closing stops the backend's generator.
        await _close(chunks)
    yield _DONE


async def _close(chunks: AsyncIterator[GenerationChunk]) -> None:
    """Close the service's generator now (not at garbage collection), which tells the
    model's worker to stop generating."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
