"""OpenAI wire format for text applications, shared by HTTP and MQTT: requests.

``ChatCompletionRequest`` and ``CompletionRequest`` (pydantic) validate a body and turn
it into the transport-neutral ``GenerationRequest``. Unknown fields are ignored, as
OpenAI clients send many (user, metadata, store, stream_options ...); a field that would
change the output and that headframe cannot honour (``n`` > 1, logprobs, logit_bias,
top_logprobs, echo, suffix, audio, image parts ...) is rejected with a message naming it.

``response_format`` (``json_object``, ``json_schema``) and ``tools``/``tool_choice``
become a GBNF grammar (runtime.structured) that the backend enforces token by token;
a schema the grammar cannot express is refused naming the keyword, never ignored.

Responses are built by runtime.codecs.openai_stream (``StreamEncoder``, re-exported
here); ``error_body``/``error_for`` are OpenAI's error shape.

Sampling defaults when a request leaves them out: GenerationRequest's (temperature
0.8, top_p 0.95, max_tokens 128), the same as llama-cpp-python's server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from runtime.backends.base import GenerationRequest
from runtime.codecs.openai_stream import StreamEncoder, usage
from runtime.errors import HeadframeError, InvalidInput, ModelNotFound
from runtime.structured.limits import MAX_JSON_DEPTH, SchemaSize, nests_deeper
from runtime.structured.schema_grammar import json_object_grammar, schema_grammar
from runtime.structured.tool_calls import ToolPlan, plan

__all__ = ["StreamEncoder", "usage"]  # re-exported: the response side lives in openai_stream

_M = TypeVar("_M", bound=BaseModel)
MAX_STOP = 4  # OpenAI's limit on stop sequences
_DEFAULTS = GenerationRequest()


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=64)
    arguments: str


class ToolCall(BaseModel):
    """A call the assistant made earlier, sent back in the conversation."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCall

    def for_template(self, where: str) -> dict[str, Any]:
        # The template walks the arguments recursively: bounded nesting, or a 400.
        deep = f"{where}.function.arguments: nests deeper than {MAX_JSON_DEPTH} levels"
        try:
            arguments = json.loads(self.function.arguments)
        except RecursionError:
            raise InvalidInput(deep) from None
        except ValueError as e:
            raise InvalidInput(f"{where}.function.arguments: not valid JSON: {e}") from e
        if nests_deeper(arguments, MAX_JSON_DEPTH):
            raise InvalidInput(deep)
        fn = {"name": self.function.name, "arguments": arguments}
        return {"id": self.id, "type": "function", "function": fn}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = Field(default=None, max_length=128)

    def to_template(self, index: int) -> dict[str, Any]:
        """The message as chat templates take it (tool calls with parsed arguments)."""
        out: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role}
        out["content"] = self.text(index)
        if self.role == "tool":
            if not self.tool_call_id:
                raise InvalidInput(f"messages[{index}].tool_call_id: required for role tool")
            out["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            where = f"messages[{index}].tool_calls"
            out["tool_calls"] = [
                c.for_template(f"{where}[{i}]") for i, c in enumerate(self.tool_calls)
            ]
        return out

    def text(self, index: int) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise InvalidInput(
                    f"messages[{index}].content: only text parts are supported, not {part.type!r}"
                )
            parts.append(part.text)
        return "".join(parts)


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(default="response", max_length=64)
    description: str | None = None
    schema_: Any = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def grammar(self) -> str | None:
        if self.type == "text":
            return None
        if self.type == "json_object":
            return json_object_grammar()
        if self.json_schema is None or self.json_schema.schema_ is None:
            raise InvalidInput("response_format: json_schema.schema is required")
        return schema_grammar(self.json_schema.schema_, "response_format")


# Fields that change the output and that headframe does not honour: refused, not ignored.
UNSUPPORTED = {
    "logit_bias": "logit_bias",
    "top_logprobs": "top_logprobs",
    "prediction": "predicted outputs",
    "audio": "audio output",
    "web_search_options": "web search",
    "function_call": "legacy function calling (use tools)",
    "functions": "legacy function calling (use tools)",
}


class _Sampling(BaseModel):
    """Fields both endpoints share."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="only one choice per request")
    logprobs: bool | int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    user: str | None = None
    response_format: ResponseFormat | None = None
    logit_bias: dict[str, float] | None = None
    top_logprobs: int | None = None
    prediction: Any = None
    audio: Any = None
    web_search_options: Any = None
    function_call: Any = None
    functions: list[Any] | None = None
    modalities: list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return v

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def _common(self) -> dict[str, Any]:
        if self.logprobs:
            raise InvalidInput("logprobs: not supported")
        for name, what in UNSUPPORTED.items():
            if getattr(self, name) not in (None, {}, []):
                raise InvalidInput(f"{name}: {what} is not supported")
        if self.modalities and set(self.modalities) != {"text"}:
            raise InvalidInput("modalities: only text output is supported")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return {
            "max_tokens": self.max_tokens if self.max_tokens is not None else _DEFAULTS.max_tokens,
            "temperature": self.temperature
            if self.temperature is not None
            else _DEFAULTS.temperature,
            "top_p": self.top_p if self.top_p is not None else _DEFAULTS.top_p,
            "stop": tuple(s for s in stop if s),
            # llama.cpp seeds are 32-bit; fold larger ones so every int is accepted.
            "seed": None if self.seed is None else self.seed % (2**32),
            "grammar": self.response_format.grammar() if self.response_format else None,
        }


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"model": "assistant", "max_tokens": 16, "seed": 7,
                 "messages": [{"role": "user", "content": "Is conveyor 3 running?"}]},
                {"model": "assistant", "max_tokens": 8, "stream": True,
                 "stream_options": {"include_usage": True}, "stop": ["\n"],
                 "messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Status?"}]},
            ]
        },
    )  # fmt: skip

    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None  # one call per turn is always allowed
    # headframe's grounded chat: knowledge packs to answer from (validated, and acted on, by
    # runtime.knowledge.grounding; a transport without knowledge packs refuses it).
    knowledge: Any = None
    _plan: ToolPlan | None = PrivateAttr(default=None)

    def tool_plan(self) -> ToolPlan | None:
        """The tool plan (None without tools); checked once, kept for the encoder."""
        if self._plan is None and self.tools:
            self._plan = plan(self.tools, self.tool_choice)
        elif not self.tools:
            plan(self.tools, self.tool_choice)  # tool_choice without tools is a 400
        return self._plan

    def to_generation(self) -> GenerationRequest:
        common = self._common()
        if self.max_tokens is None and self.max_completion_tokens is not None:
            common["max_tokens"] = self.max_completion_tokens
        messages = tuple(m.to_template(i) for i, m in enumerate(self.messages))
        tools = self.tool_plan()
        if tools is not None and tools.mode != "none":
            if common["grammar"] is not None:
                raise InvalidInput("response_format: cannot be combined with tools")
            common["grammar"] = tools.grammar
        return GenerationRequest(
            messages=messages,
            tools=tools.tools() if tools else None,
            tool_instructions=tools.instructions() if tools and tools.mode != "none" else None,
            **common,
        )


class CompletionRequest(_Sampling):
    """POST /v1/completions (the legacy text endpoint)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"model": "assistant", "prompt": "Pump pressure is", "max_tokens": 16},
                {"model": "assistant", "prompt": "Line 3:", "max_tokens": 8, "stream": True,
                 "temperature": 0.2, "top_p": 0.9, "seed": 1},
            ]
        },
    )  # fmt: skip

    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=1)

    def to_generation(self) -> GenerationRequest:
        if self.echo:
            raise InvalidInput("echo: not supported")
        if self.suffix:
            raise InvalidInput("suffix: not supported")
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidInput("prompt: send one prompt per request, not a list")
            prompt = prompt[0]
        return GenerationRequest(prompt=prompt, **self._common())


async def to_generation_off_loop(
    request: ChatCompletionRequest | CompletionRequest,
) -> GenerationRequest:
    """``request.to_generation()`` on a worker thread, for the transports' event loops.

    It compiles ``response_format`` and ``tools`` into a grammar: pure Python that must
    not hold the loop answering health checks, MQTT keepalives and the watchdog
    (DESIGN.md, rule 16). The input is bounded first, here on the loop: the schemas' size
    (runtime.structured.limits), a walk that stops at the limit, so a schema past it is
    refused before any thread is taken (threads computing at once would hold the GIL
    from the loop). Then the work runs on a thread within its time budget."""
    fmt = request.response_format
    if fmt is not None and fmt.json_schema is not None and fmt.json_schema.schema_ is not None:
        SchemaSize().take(fmt.json_schema.schema_, "response_format")
    tools = getattr(request, "tools", None)
    if tools:
        SchemaSize().take(tools, "tools")
    return await asyncio.to_thread(request.to_generation)


def parse_chat(body: bytes | str | Mapping[str, Any]) -> ChatCompletionRequest:
    """Validate a chat body (JSON text or a decoded object); InvalidInput names the field."""
    return _parse(ChatCompletionRequest, body)


def parse_completion(body: bytes | str | Mapping[str, Any]) -> CompletionRequest:
    return _parse(CompletionRequest, body)


def _parse(model: type[_M], body: bytes | str | Mapping[str, Any]) -> _M:
    try:
        if isinstance(body, bytes | str):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as e:
        raise InvalidInput(validation_message(e)) from e


def validation_message(err: ValidationError | Iterable[Mapping[str, Any]]) -> str:
    """One line naming each bad field, e.g. ``temperature: Input should be ...``."""
    errors = err.errors() if isinstance(err, ValidationError) else list(err)
    parts = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# -- errors ------------------------------------------------------------------------


# OpenAI's error "type" by HTTP status; any other status is an invalid_request_error below
# 500 and a server_error from 500 up.
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``: the one
    shape of every error under /v1/ (the routes', the guard's, FastAPI's own)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_for(exc: HeadframeError) -> dict[str, Any]:
    """The OpenAI error object for one of headframe's errors: its type from the error's
    HTTP status, ``param`` the field a bad input names or "model" for an unknown one."""
    param, code = None, exc.code
    if isinstance(exc, ModelNotFound):
        param, code = "model", "model_not_found"
    elif isinstance(exc, InvalidInput) and ":" in exc.message:
        param = exc.message.split(":", 1)[0]
        if " " in param or len(param) > 64:
            param = None
    return error_body(exc.message, error_type(exc.status), param, code)
