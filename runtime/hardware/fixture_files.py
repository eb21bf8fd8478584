"""The TOML files a fixture tree keeps beside the host's own files, for what only live
software can say: which inference runtimes are installed (``.headframe-runtimes.toml``)
and what NVML reported about NVIDIA GPUs (``.headframe-nvml.toml``).

``read_fixture`` reads and validates one (``runtime.hardware.capture`` writes them on a
live host).
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
