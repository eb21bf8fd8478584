"""The settings reference, generated from the Settings model.

One walk over ``config.Settings`` feeds two outputs: docs/configuration.md (a test keeps the
committed file current) and the commented file that ``headframe config init`` writes. Both
name every key with its type, bounds, default and title, so the model stays the one source.
Defaults that depend on the user or on systemd (the directories) are described, not printed,
so the generated text is the same on every machine.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import tomli_w
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from runtime.config.settings import ENV_PREFIX, Settings

UNSET = object()  # a default the text describes instead of printing (None, or per machine)


@dataclass(frozen=True)
class SettingDoc:
    """One key: ``section`` is the dotted table it lives in ('' for the top level)."""

    section: str
    name: str
    type: str
    default: Any  # a TOML-able value, or UNSET
    default_text: str
    title: str
    description: str
    bounds: str
    array_of_tables: bool  # the section is [[section]], e.g. [[applications]]

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        if self.array_of_tables:
            return ""
        return ENV_PREFIX + self.key.upper().replace(".", "__")


@dataclass(frozen=True)
class SectionDoc:
    path: str  # dotted
    title: str
    optional: bool  # absent (None) unless configured, e.g. [mqtt]
    array_of_tables: bool


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool, bool]:
    """(the section model, optional, array of tables) for a field that holds a section."""
    inner, optional = _unwrap_optional(annotation)
    if get_origin(inner) is list:
        (item,) = get_args(inner)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, optional, True
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner, optional, False
    return None, optional, False


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: 'int', 'path', 'one of: a, b', 'list of string'."""
    inner, optional = _unwrap_optional(annotation)
    origin = get_origin(inner)
    if origin is Literal:
        name = "one of: " + ", ".join(str(a) for a in get_args(inner))
    elif origin is list:
        name = "list of " + type_name(get_args(inner)[0])
    elif origin is dict:
        name = "table of " + type_name(get_args(inner)[1])
    elif inner is SecretStr:
        name = "string (secret)"
    elif inner is Path:
        name = "path"
    elif inner is str:
        name = "string"
    elif isinstance(inner, type):
        name = inner.__name__
    else:
        name = str(inner)
    return f"{name} (optional)" if optional else name


def bounds_of(field: FieldInfo) -> str:
    parts = []
    for m in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(m, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
        for attr in ("min_length", "max_length"):
            value = getattr(m, attr, None)
            if value is not None:
                parts.append(f"{attr.replace('_', ' ')} {value}")
        pattern = getattr(m, "pattern", None)
        if pattern is not None:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _default_of(field: FieldInfo) -> tuple[Any, str]:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, Path):
            # Per user and per unit (root, a user, systemd): described, never printed.
            return UNSET, "per user (see meaning)"
        return _tomlable(value), _render(value)
    if field.default is PydanticUndefined:
        return UNSET, "required"
    if field.default is None:
        return UNSET, "unset"
    return _tomlable(field.default), _render(field.default)


def _tomlable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list | tuple):
        return [_tomlable(v) for v in value]
    return value


def _render(value: Any) -> str:
    return toml_value(_tomlable(value))


def toml_value(value: Any) -> str:
    """``value`` as TOML writes it on the right of ``key =`` (tomli-w does the escaping)."""
    if isinstance(value, dict):  # an inline table; tomli-w would open a [table]
        return "{" + ", ".join(tomli_w.dumps({k: v}).strip() for k, v in value.items()) + "}"
    return tomli_w.dumps({"k": value}).strip()[len("k = ") :]


def walk(
    model: type[BaseModel] = Settings, prefix: str = "", array: bool = False
) -> Iterator[SectionDoc | SettingDoc]:
    """Every section and key of ``model`` in declaration order, sections after the keys."""
    subsections = []
    for name, field in model.model_fields.items():
        sub, optional, is_array = _model_of(field.annotation)
        if sub is not None:
            subsections.append((name, field, sub, optional, is_array))
            continue
        default, text = _default_of(field)
        yield SettingDoc(
            section=prefix,
            name=name,
            type=type_name(field.annotation),
            default=default,
            default_text=text,
            title=field.title or "",
            description=field.description or "",
            bounds=bounds_of(field),
            array_of_tables=array,
        )
    for name, field, sub, optional, is_array in subsections:
        path = f"{prefix}.{name}" if prefix else name
        yield SectionDoc(path, field.title or "", optional, is_array)
        yield from walk(sub, path, is_array)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/configuration.md."""
    out = [
        "# Configuration",
        "",
        "<!-- Generated from runtime/config/settings.py by `python -m runtime.config.doc`; "
        "do not edit. -->",
        "",
        "headframe reads one TOML file (`--config FILE`, else `/etc/headframe/headframe.toml` as",
        "root or `~/.config/headframe/headframe.toml` as a user) and `HEADFRAME_*` environment",
        "variables, which win over the file (`__` between section and key). Unknown keys are an",
        "error that names the key, the file and the closest valid key. `headframe config init`",
        "writes a commented file with every key below; `headframe config show` prints the",
        "effective value of each and where it came from.",
        "",
    ]
    header = [
        "| key | type | default | bounds | meaning | environment |",
        "|---|---|---|---|---|---|",
    ]
    out += ["## Top level", "", *header]
    for item in walk():
        if isinstance(item, SectionDoc):
            table = f"[[{item.path}]]" if item.array_of_tables else f"[{item.path}]"
            note = " Off unless the section is present." if item.optional else ""
            out += ["", f"## `{table}`", "", f"{item.title}.{note}", "", *header]
            continue
        meaning = item.title + (f": {item.description}" if item.description else "")
        env = f"`{item.env}`" if item.env else ""
        out.append(
            f"| `{item.name}` | {_cell(item.type)} | `{_cell(item.default_text)}` | "
            f"{_cell(item.bounds)} | {_cell(meaning)} | {env} |"
        )
    return "\n".join(out) + "\n"


def commented_file() -> str:
    """The file ``headframe config init`` writes: every key, commented out, at its default.

    Uncommenting a ``# key = value`` line leaves the setting as it was; keys whose default
    is unset or per machine show a placeholder in a comment instead of a value.
    """
    out = [
        "# headframe settings. Every key is listed at its default, commented out: uncomment",
        "# and change what this site needs. Reference: docs/configuration.md.",
        f"# {ENV_PREFIX}<SECTION>__<KEY> environment variables override this file.",
    ]
    for item in walk():
        if isinstance(item, SectionDoc):
            table = f"[[{item.path}]]" if item.array_of_tables else f"[{item.path}]"
            out += ["", f"# {item.title}" + (" (off unless present)" if item.optional else "")]
            out.append(f"# {table}")
            continue
        about = item.title + (f": {item.description}" if item.description else "")
        if item.bounds:
            about += f" ({item.bounds})"
        out.append(f"# {about}")
        if item.default is UNSET:
            out.append(f"#   {item.name} = ...  # {item.type}; default {item.default_text}")
        else:
            out.append(f"# {item.name} = {toml_value(item.default)}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # python -m runtime.config.doc > docs/configuration.md
    import sys

    sys.stdout.write(markdown())
