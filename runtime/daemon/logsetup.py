"""Logging for the daemon: JSON lines under systemd (or when asked), plain text otherwise.

systemd sets JOURNAL_STREAM for a service whose output goes to the journal and
INVOCATION_ID for every unit; either means "one JSON object per line" so the journal
(and whatever ships it) gets structured fields.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

# "color_message" is uvicorn's copy of the message with ANSI colours for its own formatter.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "color_message",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# uvicorn logs its server's start, stop and errors as "uvicorn.error" (an operator reads
# that as an error); name its loggers for what they carry.
LOGGER_NAMES = {"uvicorn.error": "http.server", "uvicorn.access": "http.access", "uvicorn": "http"}


class _RenameLoggers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.name = LOGGER_NAMES.get(record.name, record.name)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": _ANSI.sub("", record.getMessage()),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        return orjson.dumps(doc, default=str).decode()


def wants_json(log_format: str, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if log_format != "auto":
        return log_format == "json"
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def configure_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if wants_json(log_format):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RenameLoggers())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
