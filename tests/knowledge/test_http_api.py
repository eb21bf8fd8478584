"""Knowledge over HTTP with the openai SDK: ``client.vector_stores.search`` on a pack, and a
grounded chat (``extra_body={"knowledge": ...}``) whose answer carries citations naming the
right page; with ``tools``, retrieval offered to the model as a function."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from runtime.catalog import Store
from runtime.config import Settings
from runtime.knowledge.library import KnowledgeLibrary
from runtime.service import InferenceService
from tests.support.http_server import ServerHandle, running_server
from tests.support.loaders import ort_loader
from tests.support.minilm import APP
from tests.support.prereq import need_module
from tests.support.text_models import write_text_package

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(packs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:  # type: ignore[no-untyped-def]
    """create_app over a service with MiniLM and a tiny text model, and the packs' library."""
    need_module("llama_cpp")
    from runtime.api.app import create_app

    text = write_text_package(
        tmp_path_factory.mktemp("text"), variants=(("tiny-f32", "tiny", "f32"),)
    )
    settings = Settings(paths={"state_dir": tmp_path_factory.mktemp("state")})

    async def build() -> tuple[Any, Any]:
        service = InferenceService(ort_loader)
        await service.add(Store(packs.store).load(APP))
        await service.add(text)
        library = KnowledgeLibrary(packs.store, service)
        library.refresh()
        return create_app(service, settings=settings, knowledge=library), service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)


def test_the_openai_sdk_searches_a_pack(client: openai.OpenAI) -> None:
    page = client.vector_stores.search("manuals", query="What torque for the main bearing bolts?",
                                       max_num_results=3)  # fmt: skip
    top = page.data[0]
    assert top.filename == "manual.pdf" and top.attributes and top.attributes["page"] == 2
    assert "450 Nm" in top.content[0].text and 0 < top.score <= 1
    text_only = client.vector_stores.search("manuals", query="SC-2291", extra_body={"mode": "text"})
    assert text_only.data[0].attributes["page"] == 4  # type: ignore[index]
    filtered = client.vector_stores.search(
        "manuals", query="replace", filters={"type": "eq", "key": "page", "value": 5}
    )
    assert filtered.data and all(r.attributes["page"] == 5 for r in filtered.data)  # type: ignore[index]
    stores = client.vector_stores.list()
    assert {s.id for s in stores.data} == {"manuals", "stdlib"}


def test_http_errors_have_openai_shape(server: ServerHandle, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="no knowledge pack 'nope'"):
        client.vector_stores.search("nope", query="x")
    r = httpx.post(server.url + "/v1/vector_stores/manuals/search", json={"query": ""})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    r = httpx.post(server.url + "/v1/vector_stores/manuals/search",
                   json={"query": "bearing " * 400})  # fmt: skip
    assert r.status_code == 400 and "reads at most 256" in r.json()["error"]["message"]


def test_a_grounded_chat_cites_the_page(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="assistant", max_tokens=8, seed=1,
        messages=[{"role": "user", "content": "What torque for the main bearing bolts?"}],
        extra_body={"knowledge": {"packs": ["manuals"], "max_num_results": 2}},
    )  # fmt: skip
    citations = completion.model_extra["citations"]  # type: ignore[index]
    assert citations[0]["file"] == "manual.pdf" and citations[0]["page"] == 2
    assert citations[0]["index"] == 1 and "450 Nm" in citations[0]["text"]
    assert citations[0]["id"].startswith("manuals@1.0.0#") and len(citations) == 2
    assert completion.usage and completion.usage.prompt_tokens > 60  # the chunks were sent


def test_a_streamed_grounded_chat_carries_citations_on_the_last_chunk(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="assistant", max_tokens=4, stream=True,
        messages=[{"role": "user", "content": "What does error code E-4711 mean?"}],
        extra_body={"knowledge": ["manuals"]},
    )  # fmt: skip
    chunks = list(stream)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert final and final[0].model_extra["citations"][0]["page"] == 5  # type: ignore[index]


def test_with_tools_retrieval_is_offered_as_a_function(client: openai.OpenAI) -> None:
    # tool_choice names the search function, so even a random-weight model calls it: the
    # box then runs the search itself and answers from what it found.
    tools = [{"type": "function", "function": {"name": "open_ticket", "parameters": {
        "type": "object", "properties": {"title": {"type": "string"}}}}}]  # fmt: skip
    completion = client.chat.completions.create(
        model="assistant", max_tokens=8, seed=3, tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "search_knowledge"}},
        messages=[{"role": "user", "content": "How often is the eccentric shaft greased?"}],
        extra_body={"knowledge": ["manuals"]},
    )  # fmt: skip
    citations = completion.model_extra["citations"]  # type: ignore[index]
    assert citations, "the model's search ran on the box"
    assert completion.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_unknown_pack_in_chat_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="no knowledge pack 'nope'"):
        client.chat.completions.create(
            model="assistant", max_tokens=2, messages=[{"role": "user", "content": "hi"}],
            extra_body={"knowledge": ["nope"]},
        )  # fmt: skip


def test_the_docs_knowledge_example_runs(server: ServerHandle) -> None:
    import contextlib
    import io
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "text.md"
    blocks = [b for b in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
              if "vector_stores" in b]  # fmt: skip
    assert len(blocks) == 1
    code = blocks[0].replace("http://127.0.0.1:8080/v1", server.url + "/v1")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/text.md[knowledge]", "exec"), {"__name__": "docs_example"})
    printed = out.getvalue()
    assert "manual.pdf p.2" in printed and "SC-2291 is on page 4" in printed
    assert "[1] manual.pdf page 2 (2 Main bearing)" in printed


def test_a_second_round_past_max_tokens_offers_only_the_clients_tools(
    client: openai.OpenAI,
) -> None:
    # The model calls the client's tool in the first round, at more tokens than the client
    # allows: the box generates again within max_tokens. That second round is exactly the
    # client's request (no search_knowledge offered, so no call of a tool the client never
    # defined can come back): its prompt is as long as the same request without knowledge.
    tools = [{"type": "function", "function": {"name": "ticket", "parameters": {
        "type": "object", "properties": {}}}}]  # fmt: skip
    ask: dict[str, Any] = {
        "model": "assistant", "max_tokens": 16, "seed": 5, "tools": tools,
        "tool_choice": "required", "messages": [{"role": "user", "content": "Ticket"}],
    }  # fmt: skip
    plain = client.chat.completions.create(**ask)
    grounded = client.chat.completions.create(**ask, extra_body={"knowledge": ["manuals"]})
    assert grounded.model_extra["citations"] == []  # type: ignore[index]  # no search ran
    assert grounded.choices[0].finish_reason == "length"
    assert grounded.usage and plain.usage
    assert grounded.usage.prompt_tokens == plain.usage.prompt_tokens
    assert grounded.choices[0].message.content == plain.choices[0].message.content
    assert "search_knowledge" not in (grounded.choices[0].message.content or "")
