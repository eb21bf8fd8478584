"""Structured output for text models: JSON Schema -> GBNF grammar (``schema_grammar``) and
OpenAI tool calls on top of it (``tool_calls``). Pure Python; no runtime is imported."""
