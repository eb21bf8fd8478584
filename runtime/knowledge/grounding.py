"""Grounded chat: retrieve from knowledge packs, put the chunks in the prompt, cite them.

A chat request (HTTP ``/v1/chat/completions`` or MQTT ``.../chat``) names packs in the
``knowledge`` body field (the openai SDK sends it with ``extra_body``)::

    "knowledge": ["manuals"]                          # or, in full:
    "knowledge": {"packs": ["manuals"], "max_num_results": 4, "mode": "hybrid",
                  "score_threshold": 0.0, "as_tool": false}

Without ``tools`` (or with ``as_tool: false``) the box searches every named pack with
the last user message, keeps the best ``max_num_results`` chunks across packs, and puts
them, numbered [1], [2] ..., with file, page and heading, into the system message, asking
the model to cite the numbers. With ``tools`` the box offers retrieval to the model as
one more function, ``search_knowledge(query)``: when the model calls it the box runs the
search itself and continues the conversation with the results (one search per request),
and a call of the client's own tools goes back to the client as usual.

The answer carries ``citations`` (top level of the ``chat.completion``, and on the final
chunk of a stream): every chunk given to the model with its number, pack, version, file,
page, heading, score and text, and ``cited`` true where the answer names its number.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.backends.base import GenerationChunk, GenerationRequest
from runtime.codecs.openai import (
    ChatCompletionRequest,
    to_generation_off_loop,
    validation_message,
)
from runtime.errors import InvalidInput
from runtime.knowledge.library import KnowledgeLibrary
from runtime.knowledge.search import Hit, Mode, SearchRequest

TOOL_NAME = "search_knowledge"
CALL_TOKENS = 256  # the first round of the tool flow may use this many for the call
MAX_PACKS = 4
_CITE = re.compile(r"\[(\d{1,2})\]")
INSTRUCTIONS = (
    "Answer from the site documents below. Cite each fact with the number of its "
    "document in brackets, like [1]. If the documents do not hold the answer, say so."
)


class KnowledgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    packs: list[str] = Field(min_length=1, max_length=MAX_PACKS)
    max_num_results: int = Field(default=4, ge=1, le=16)
    mode: Mode = "hybrid"
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    as_tool: bool | None = None  # default: offered as a tool when the request has tools


def parse_options(value: Any) -> KnowledgeOptions:
    """The ``knowledge`` field: a list of pack names or the full object."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        value = {"packs": value}
    try:
        return KnowledgeOptions.model_validate(value)
    except ValidationError as e:
        raise InvalidInput("knowledge: " + validation_message(e)) from e


@dataclass(frozen=True)
class Cited:
    index: int
    pack: str
    version: str
    hit: Hit

    def label(self) -> str:
        row = self.hit.row
        where = [row.source] + ([f"page {row.page}"] if row.page else [])
        return ", ".join(where + ([row.heading] if row.heading else []))

    def to_dict(self, answer: str) -> dict[str, Any]:
        row = self.hit.row
        return {
            "index": self.index, "id": f"{self.pack}@{self.version}#{row.id}",
            "pack": self.pack, "pack_version": self.version, "chunk": row.id,
            "file": row.source, "page": row.page, "heading": row.heading,
            "score": round(self.hit.score, 6), "text": row.text,
            "cited": f"[{self.index}]" in answer,
        }  # fmt: skip


def context_text(cited: list[Cited]) -> str:
    return "\n\n".join(f"[{c.index}] {c.label()}:\n{c.hit.row.text}" for c in cited)


class ChatService(Protocol):
    async def generate(
        self, app: str, request: GenerationRequest, *, protocol: str = "openai"
    ) -> Any:
        """A text answer (runtime.service.TextAnswer): ``chunks`` and who produces them."""


@dataclass
class Grounded:
    """What the transport generates from: the grounded request, what was retrieved, and
    (tool flow, when the model did not search) the first round's chunks to send as-is."""

    request: ChatCompletionRequest
    cited: list[Cited]
    replay: list[GenerationChunk] | None = None
    answered: Any = None  # the first round's answer (runtime.service.TextAnswer): who

    def extra(self, answer: str) -> dict[str, Any]:
        return {"citations": [c.to_dict(answer) for c in self.cited]}

    def replay_answer(self) -> Any:
        """The first round's answer again (its chunks as a stream, who produced them), when
        they are the answer; else None (the transport generates from ``request``)."""
        if self.replay is None or self.answered is None:
            return None
        return dataclasses.replace(self.answered, chunks=_replay(self.replay))


async def _replay(chunks: list[GenerationChunk]) -> AsyncIterator[GenerationChunk]:
    for c in chunks:
        yield c


class Grounding:
    """Built once over the library; ``await ground(service, body, protocol)`` per request."""

    def __init__(self, library: KnowledgeLibrary) -> None:
        self.library = library

    async def retrieve(self, opts: KnowledgeOptions, query: str) -> list[Cited]:
        found: list[tuple[str, str, Hit]] = []
        request = SearchRequest(query=query, max_num_results=opts.max_num_results,
                                mode=opts.mode,
                                ranking_options={"score_threshold": opts.score_threshold})  # type: ignore[arg-type]  # fmt: skip
        for name in dict.fromkeys(opts.packs):
            pack, hits = await self.library.search(name, request)
            found += [(name, pack.version, h) for h in hits]
        found.sort(key=lambda f: -f[2].score)
        return [Cited(i, n, v, h) for i, (n, v, h) in enumerate(found[: opts.max_num_results], 1)]

    async def ground(
        self, service: ChatService, body: ChatCompletionRequest, protocol: str
    ) -> Grounded:
        opts = parse_options(body.knowledge)
        for name in opts.packs:
            self.library.get(name)  # 404 / 409 before any generation
        as_tool = opts.as_tool if opts.as_tool is not None else bool(body.tools)
        if not as_tool:
            cited = await self.retrieve(opts, _last_user_text(body))
            return Grounded(_with_context(body, cited), cited)
        return await self._tool_round(service, body, opts, protocol)

    async def _tool_round(
        self, service: ChatService, body: ChatCompletionRequest, opts: KnowledgeOptions,
        protocol: str,
    ) -> Grounded:  # fmt: skip
        tool = {"type": "function", "function": {
            "name": TOOL_NAME,
            "description": "Search the site's documents (" + ", ".join(opts.packs)
            + ") for passages that answer a question.",
            "parameters": {"type": "object", "required": ["query"],
                           "properties": {"query": {"type": "string", "maxLength": 200}}},
        }}  # fmt: skip
        asked = body.max_tokens or body.max_completion_tokens or GenerationRequest().max_tokens
        # Room for a whole call even when the client asked for a short answer.
        first = _rebuilt(
            body, tools=[*(body.tools or []), tool], stream=False,
            max_tokens=max(asked, CALL_TOKENS), max_completion_tokens=None,
        )  # fmt: skip
        generation = await to_generation_off_loop(first)
        answer = await service.generate(body.model, generation, protocol=protocol)
        chunks = [c async for c in answer.chunks]
        plan = first.tool_plan()
        text = "".join(c.text for c in chunks)
        call = plan.parse(text) if plan is not None else None
        if call is None or call.get("function", {}).get("name") != TOOL_NAME:
            # The model answered or called a client tool: that is the answer, as it came,
            # unless it ran past what the client asked for: then once more, within it, as
            # the client asked (its own tools only: a call of the box's search there would
            # reach a client that never defined it).
            used = chunks[-1].completion_tokens if chunks else 0
            again = _client_round(body)
            return Grounded(again, [], replay=chunks if used <= asked else None, answered=answer)
        try:
            query = str(json.loads(call["function"]["arguments"])["query"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInput(f"the model called {TOOL_NAME} without a query: {e}") from e
        cited = await self.retrieve(opts, query)
        messages = [
            *(m.model_dump(by_alias=True, exclude_none=True) for m in body.messages),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": _tool_text(cited)},
        ]
        # The search ran; the answer is the model's to give, with the client's tools only.
        return Grounded(_client_round(body, messages=messages), cited)


def _last_user_text(body: ChatCompletionRequest) -> str:
    for i in range(len(body.messages) - 1, -1, -1):
        m = body.messages[i]
        if m.role == "user":
            text = m.text(i).strip()
            if text:
                return text
    raise InvalidInput("knowledge: a grounded chat needs a user message to search with")


def _with_context(body: ChatCompletionRequest, cited: list[Cited]) -> ChatCompletionRequest:
    """The request with the retrieved chunks in the (first) system message."""
    from runtime.codecs.openai import ChatMessage

    context = INSTRUCTIONS + "\n\n" + (context_text(cited) or "(no document matched)")
    messages = list(body.messages)
    if messages and messages[0].role in ("system", "developer"):
        messages[0] = messages[0].model_copy(
            update={"content": messages[0].text(0) + "\n\n" + context}
        )
    else:
        messages.insert(0, ChatMessage(role="system", content=context))
    return body.model_copy(update={"messages": messages})


def _tool_text(cited: list[Cited]) -> str:
    return INSTRUCTIONS + "\n\n" + (context_text(cited) or "(no document matched)")


def _client_round(body: ChatCompletionRequest, **update: Any) -> ChatCompletionRequest:
    """``body`` with the client's own tools and nothing of the box's search: a tool_choice
    that named the search (or any choice, when the client sent no tools) is dropped."""
    update["tools"] = body.tools or None
    choice = body.tool_choice
    if not body.tools or (isinstance(choice, dict) and TOOL_NAME in json.dumps(choice)):
        update["tool_choice"] = None
    return _rebuilt(body, **update)


def _rebuilt(body: ChatCompletionRequest, **update: Any) -> ChatCompletionRequest:
    """A new, validated request (its tool plan computed afresh for the tools it has)."""
    data = body.model_dump(by_alias=True, exclude_unset=True)
    return ChatCompletionRequest.model_validate({**data, **update})


Extra = Callable[[str], dict[str, Any]]
