"""Tools reach the model either way: a chat template that uses ``tools`` renders them (and
the assistant's calls and the tool results) itself; one that does not gets a system message
with the functions and plain-text tool turns."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.backends.base import LoadOptions
from runtime.backends.llama import LlamaBackend
from runtime.catalog import Variant, VariantMeta
from runtime.catalog.writer import file_entry
from runtime.codecs.openai import parse_chat
from tests.support.gguf_models import write_llama_gguf
from tests.support.prereq import need_module

need_module("llama_cpp")  # every test here runs llama.cpp

# Hermes-style: tools in the system turn, calls inside <tool_call> tags, results as role tool.
TOOLS_TEMPLATE = (
    "{{ bos_token }}{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n"
    "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}"
    "</tool_call>{% endfor %}{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOOL = {
    "type": "function",
    "function": {
        "name": "get_sensor",
        "parameters": {"type": "object", "properties": {"sensor": {"type": "string"}}},
    },
}
TURNS = [
    {"role": "user", "content": "belt speed?"},
    {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "get_sensor", "arguments": '{"sensor": "belt"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "2.1 m/s"},
]  # fmt: skip


def _backend(tmp_path: Path, template: str | None) -> LlamaBackend:
    kw = {} if template is None else {"chat_template": template}
    gguf = write_llama_gguf(tmp_path / "m.gguf", size="tiny", **kw)  # type: ignore[arg-type]
    entry = file_entry(gguf, tmp_path)
    meta = VariantMeta(
        variant="v", format="gguf", precision="f32", entrypoint="m.gguf", files=(entry,),
        bytes=entry.size, peak_memory_bytes=entry.size,
    )  # fmt: skip
    b = LlamaBackend()
    b.load(Variant(meta, tmp_path), LoadOptions(intra_op_threads=1))
    return b


def _prompt_tokens(b: LlamaBackend, body: dict[str, object]) -> int:
    gen = parse_chat({"model": "a", "max_tokens": 1, **body}).to_generation()
    return list(b.generate(gen))[-1].prompt_tokens


@pytest.mark.parametrize("template", [TOOLS_TEMPLATE, None], ids=["uses-tools", "chatml"])
def test_tools_and_tool_turns_reach_the_prompt(tmp_path: Path, template: str | None) -> None:
    b = _backend(tmp_path, template)
    try:
        assert b.info().detail["chat_template"] == "gguf"
        plain = _prompt_tokens(b, {"messages": TURNS[:1]})
        with_tools = _prompt_tokens(b, {"messages": TURNS[:1], "tools": [TOOL]})
        assert with_tools > plain + 10  # the function's description is in the prompt
        whole = _prompt_tokens(b, {"messages": TURNS, "tools": [TOOL]})
        assert whole > with_tools + 5  # the call and its result too
        none = _prompt_tokens(b, {"messages": TURNS[:1], "tools": [TOOL], "tool_choice": "none"})
        assert none <= with_tools  # no instructions to call when calls are off
    finally:
        b.unload()
