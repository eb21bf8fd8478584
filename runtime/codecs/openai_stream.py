"""OpenAI response objects for generated text, shared by HTTP and MQTT.

``StreamEncoder`` turns the backend's ``GenerationChunk`` stream into
``chat.completion.chunk`` / ``text_completion`` objects (and the optional usage chunk);
``StreamEncoder.response`` builds the non-streaming ``chat.completion`` /
``text_completion`` object.

With a tool plan (runtime.structured.tool_calls) the encoder holds back text that is, or
may still become, a tool call; a complete call goes out as ``tool_calls`` (one delta in
a stream, with ``finish_reason: "tool_calls"``), anything else as ordinary content.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.backends.base import GenerationChunk
from runtime.structured.tool_calls import ToolPlan


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
    tools: ToolPlan | None = None
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _held: list[str] = field(default_factory=list)
    _holding: bool = True

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl-" if self.kind == "chat" else "cmpl-"
            self.id = prefix + uuid.uuid4().hex
        self._holding = self.tools is not None and self.tools.mode != "none"

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

    def _choice(
        self, text: str | None, finish: str | None, role: bool = False,
        call: dict[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        if self.kind == "chat":
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            if call is not None:
                delta["tool_calls"] = [{"index": 0, **call}]
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    def start(self) -> list[dict[str, Any]]:
        """What goes out before the first token: chat announces the assistant role."""
        if self.kind == "chat":
            return [self._envelope([self._choice("", None, role=True)])]
        return []

    def _release(self, text: str) -> str:
        """The text to send now: all of it unless it is (or may become) a tool call."""
        if not self._holding:
            return text
        self._held.append(text)
        held = "".join(self._held)
        assert self.tools is not None
        if self.tools.could_be_call(held):
            return ""
        self._holding = False
        self._held.clear()
        return held

    def encode(self, chunk: GenerationChunk) -> list[dict[str, Any]]:
        """The objects for one chunk: its text (if any), then on the last chunk the
        finish_reason and, when asked for, the usage chunk with no choices."""
        self.prompt_tokens = chunk.prompt_tokens or self.prompt_tokens
        self.completion_tokens = max(self.completion_tokens, chunk.completion_tokens)
        out = []
        text = self._release(chunk.text) if chunk.text else ""
        if text:
            out.append(self._envelope([self._choice(text, None)]))
        if chunk.finish_reason is not None:
            finish: str = chunk.finish_reason
            held, self._held = "".join(self._held), []
            call = self.tools.parse(held) if self.tools and held else None
            if call is not None:
                out.append(self._envelope([self._choice(None, None, call=call)]))
                finish = "tool_calls"
            elif held:  # not a complete call after all (cut by max_tokens): plain text
                out.append(self._envelope([self._choice(held, None)]))
            out.append(self._envelope([self._choice(None, finish)]))
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
            message: dict[str, Any] = {"role": "assistant", "content": content}
            call = self.tools.parse(content) if self.tools else None
            if call is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                finish = "tool_calls"
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
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
