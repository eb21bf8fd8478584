"""The TOML files a fixture tree keeps beside the host's own files, for what only live
software can say: which inference runtimes are installed (``.headframe-runtimes.toml``)
and what NVML reported about NVIDIA GPUs (``.headframe-nvml.toml``).

``read_fixture`` reads and validates one; ``toml_string`` writes a value that any TOML
reader takes back unchanged (``runtime.hardware.capture`` writes them on a live host).
"""

from __future__ import annotations

import tomllib
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from runtime.errors import ProbeError
from runtime.hardware.hostfs import HostFS

M = TypeVar("M", bound=BaseModel)


def read_fixture(fs: HostFS, name: str, model: type[M]) -> M | None:
    """``<root>/<name>`` validated as ``model``; None when the tree has no such file.
    Raises ProbeError naming the file and the field."""
    path = fs.path("/" + name)
    text = fs.read_text("/" + name)
    if text is None:
        return None
    try:
        return model.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ProbeError(f"{path}: not valid TOML: {e}") from e
    except ValidationError as e:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ProbeError(f"{path}: {where}") from e


def toml_string(value: str) -> str:
    """A TOML basic string. Control characters (an exception's message can hold newlines
    and terminal colour codes) become escapes; a lone surrogate, which TOML cannot hold,
    becomes U+FFFD."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        elif (code < 0x20 and ch != "\t") or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
