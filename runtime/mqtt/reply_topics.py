"""Which Response Topics the box answers on.

A request names where its reply goes, and the box publishes there with its own broker
credentials. Unchecked, that lets anyone who may send a request make the box publish
where only headframe nodes and SCADA hosts should: an infer request answered on
``headframe/<site>/<node>/cmd/reload`` reloaded every model, and the same trick reached
other nodes' ``cmd`` and ``status``. So a Response Topic is refused when

- it is unusable as a topic (``check_reply_topic``: empty, wildcards, NUL, ``$``, length);
- it lies in a tree a headframe node subscribes to or publishes on, for any node: the
  ``{prefix}`` tree of every site and node the template can name (cmd, status, info,
  telemetry, events, fleet, models, ...), the whole ``headframe/`` namespace (pools),
  Sparkplug B's ``spBv1.0/#``, and whatever else is handed to ``refuse`` (the publish and
  alert topics of sensor-stream bindings);
- ``mqtt.reply_prefix`` is set and it lies outside that prefix.

The broker's ACL (docs/mqtt.md) is the other half: it keeps the box's own writes to the
topics a site allows.
"""

from __future__ import annotations

import re
import string

from runtime.errors import ConfigError, InvalidInput
from runtime.mqtt.topics import check_reply_topic

NAMESPACE = "headframe/#"  # every node's default prefix and every pool live here
SPARKPLUG = "spBv1.0/#"


def filter_pattern(topic_filter: str) -> str:
    """A regular expression for the topics an MQTT topic filter matches (``+``, ``#``)."""
    levels = topic_filter.split("/")
    tail = ""
    if levels[-1] == "#":
        levels = levels[:-1]
        tail = "(?:/.*)?" if levels else ".*"  # "a/#" also matches "a" itself
    for level in levels:
        if level != "+" and ("+" in level or "#" in level):
            raise ConfigError(f"mqtt: topic filter {topic_filter!r}: + and # must fill a level")
    return "/".join("[^/]*" if lv == "+" else re.escape(lv) for lv in levels) + tail


def template_pattern(template: str) -> str:
    """A regular expression for the ``{prefix}`` tree of every site and node: the
    template with each ``{site}``/``{node}`` standing for any one level's text."""
    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append("[^/]+")
    return "".join(parts) + "(?:/.*)?"


class ReplyTopics:
    """The Response Topic policy for one bridge: ``check`` is called for every request
    that names one; ``refuse`` adds a topic filter (stream bindings' topics)."""

    def __init__(self, prefix_template: str, *, reply_prefix: str | None = None) -> None:
        self.reply_prefix = reply_prefix
        self._refused: list[tuple[str, str]] = [
            (f"{prefix_template} (any site, any node)", template_pattern(prefix_template)),
            (NAMESPACE, filter_pattern(NAMESPACE)),
            (SPARKPLUG, filter_pattern(SPARKPLUG)),
        ]
        self._compile()
        if reply_prefix is not None and self._why(reply_prefix + "/x") is not None:
            raise ConfigError(
                f"mqtt.reply_prefix {reply_prefix!r} lies in headframe's own topics "
                f"({self._why(reply_prefix + '/x')}): no reply could ever be sent"
            )

    def refuse(self, topic_filter: str) -> None:
        """Refuse replies on every topic ``topic_filter`` matches, from now on."""
        self._refused.append((topic_filter, filter_pattern(topic_filter)))
        self._compile()

    def _compile(self) -> None:
        # One alternation: one match per request, whatever the number of filters.
        self._any = re.compile("|".join(f"(?:{p})" for _, p in self._refused), re.DOTALL)

    def _why(self, topic: str) -> str | None:
        if self._any.fullmatch(topic) is None:
            return None
        return next(name for name, p in self._refused if re.fullmatch(p, topic, re.DOTALL))

    def check(self, topic: str | None) -> str:
        """``topic`` when the box may answer there; else InvalidInput saying why."""
        topic = check_reply_topic(topic)
        why = self._why(topic)
        if why is not None:
            raise InvalidInput(
                f"response topic {topic!r} is one of headframe's own topics ({why}); "
                "answer on a topic outside them"
            )
        p = self.reply_prefix
        if p is not None and topic != p and not topic.startswith(p + "/"):
            raise InvalidInput(f"response topic {topic!r} is outside mqtt.reply_prefix {p!r}")
        return topic
