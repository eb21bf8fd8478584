"""OpenAI wire format for text applications, shared by HTTP and MQTT.

Requests: ``ChatCompletionRequest`` and ``CompletionRequest`` (pydantic) validate a body
and turn it into the transport-neutral ``GenerationRequest``. Unknown fields are
ignored, as OpenAI clients send many; fields headframe cannot honour (``n`` > 1,
tools, logprobs, echo, suffix, image parts) are rejected with a message naming them.

Responses: ``StreamEncoder`` turns the backend's ``GenerationChunk`` stream into
``chat.completion.chunk`` / ``text_completion`` objects (and the optional usage chunk),
and ``StreamEncoder.response`` builds the non-streaming ``chat.completion`` /
``text_completion`` object. ``error_body`` is OpenAI's error shape.

Sampling defaults when a request leaves them out: GenerationRequest's (temperature
0.8, top_p 0.95, max_tokens 128), the same as llama-cpp-python's server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.backends.base import GenerationChunk, GenerationRequest
from runtime.errors import (
    Busy,
    HeadframeError,
    InvalidInput,
    ModelNotFound,
    NotReady,
)

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


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

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
    functions: list[Any] | None = None

    def to_generation(self) -> GenerationRequest:
        if self.tools or self.functions:
            raise InvalidInput("tools: tool and function calling are not supported")
        common = self._common()
        if self.max_tokens is None and self.max_completion_tokens is not None:
            common["max_tokens"] = self.max_completion_tokens
        role = {"developer": "system"}
        messages = tuple(
            {"role": role.get(m.role, m.role), "content": m.text(i)}
            for i, m in enumerate(self.messages)
        )
        return GenerationRequest(messages=messages, **common)


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


# -- responses ---------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass
class StreamEncoder:
    """Encodes one request's chunks; ``kind`` is "chat" or "text" (legacy completions)."""

    kind: Literal["chat", "text"]
    model: str
    include_usage: bool = False
    fingerprint: str | None = None
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl-" if self.kind == "chat" else "cmpl-"
            self.id = prefix + uuid.uuid4().hex

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        out: dict[str, Any] = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def _choice(self, text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if self.kind == "chat":
            delta: dict[str, str] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    def start(self) -> list[dict[str, Any]]:
        """What goes out before the first token: chat announces the assistant role."""
        if self.kind == "chat":
            return [self._envelope([self._choice("", None, role=True)])]
        return []

    def encode(self, chunk: GenerationChunk) -> list[dict[str, Any]]:
        """The objects for one chunk: its text (if any), then on the last chunk the
        finish_reason and, when asked for, the usage chunk with no choices."""
        self.prompt_tokens = chunk.prompt_tokens or self.prompt_tokens
        self.completion_tokens = max(self.completion_tokens, chunk.completion_tokens)
        out = []
        if chunk.text:
            out.append(self._envelope([self._choice(chunk.text, None)]))
        if chunk.finish_reason is not None:
            out.append(self._envelope([self._choice(None, chunk.finish_reason)]))
            if self.include_usage:
                final = self._envelope([])
                final["usage"] = usage(self.prompt_tokens, self.completion_tokens)
                out.append(final)
        return out

    def response(self, chunks: Iterable[GenerationChunk]) -> dict[str, Any]:
        """The non-streaming object (chat.completion or text_completion) for all chunks."""
        text = []
        finish: str | None = None
        for c in chunks:
            text.append(c.text)
            self.prompt_tokens = c.prompt_tokens or self.prompt_tokens
            self.completion_tokens = max(self.completion_tokens, c.completion_tokens)
            finish = c.finish_reason or finish
        content = "".join(text)
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish or "stop",
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": [choice],
            "usage": usage(self.prompt_tokens, self.completion_tokens),
        }


# -- errors ------------------------------------------------------------------------


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_for(exc: HeadframeError) -> dict[str, Any]:
    """The OpenAI error object for one of headframe's errors."""
    if isinstance(exc, ModelNotFound):
        return error_body(exc.message, "invalid_request_error", "model", "model_not_found")
    if isinstance(exc, InvalidInput):
        param = exc.message.split(":", 1)[0] if ":" in exc.message else None
        if param is not None and (" " in param or len(param) > 64):
            param = None
        return error_body(exc.message, "invalid_request_error", param, exc.code)
    if isinstance(exc, Busy):
        return error_body(exc.message, "rate_limit_error", None, exc.code)
    if isinstance(exc, NotReady):
        return error_body(exc.message, "service_unavailable", None, exc.code)
    return error_body(exc.message, "server_error", None, exc.code)
