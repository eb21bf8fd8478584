"""MQTT topic names: prefix templating, the subscriptions, and parsing of incoming topics.

Every topic the bridge uses is built here so that docs/mqtt.md, the bridge and the
tests agree. The prefix is a template (default ``headframe/{site}/{node}``); pools of
boxes share ``$share/{group}/headframe/{site}/pool/{app}/infer`` so that the broker
hands each request to exactly one member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runtime.errors import ConfigError, InvalidInput

RouteKind = Literal["infer", "chat", "embed", "cmd", "knowledge"]
# Request kinds an application topic takes: {prefix}/models/{app}/{kind}.
MODEL_KINDS = ("infer", "chat", "embed")
MAX_TOPIC_BYTES = 65535


@dataclass(frozen=True)
class Route:
    """Where an incoming message goes: ``name`` is the application or the command."""

    kind: RouteKind
    name: str
    pooled: bool = False


def _check_levels(topic: str, what: str) -> None:
    if not topic or any(c in topic for c in "+#\x00"):
        raise ConfigError(f"mqtt: {what} {topic!r} must be non-empty and free of + # and NUL")
    if topic.startswith("$") or topic.startswith("/") or topic.endswith("/") or "//" in topic:
        raise ConfigError(f"mqtt: {what} {topic!r} must not start with $ or have empty levels")


def check_reply_topic(topic: str | None) -> str:
    """Validate a request's Response Topic; raises InvalidInput with the reason."""
    if topic is None or topic == "":
        raise InvalidInput("no response topic")
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise InvalidInput(f"response topic {topic!r} contains a wildcard or NUL")
    if topic.startswith("$"):
        raise InvalidInput(f"response topic {topic!r} is a broker-reserved ($) topic")
    # At most 4 bytes a character: only a long topic needs encoding to be measured.
    if len(topic) * 4 > MAX_TOPIC_BYTES and len(topic.encode("utf-8", "surrogatepass")) > (
        MAX_TOPIC_BYTES
    ):
        raise InvalidInput("response topic too long")
    return topic


@dataclass(frozen=True)
class Topics:
    """All topic names for one node. Build with :meth:`from_settings` or directly."""

    prefix: str
    site: str
    pool_group: str | None = None

    @classmethod
    def build(cls, template: str, *, site: str, node: str, pool_group: str | None) -> Topics:
        try:
            prefix = template.format(site=site, node=node)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(
                f"mqtt.prefix {template!r}: only {{site}} and {{node}} may be used ({e})"
            ) from e
        _check_levels(prefix, "prefix")
        if pool_group is not None:
            _check_levels(pool_group, "pool_group")
            if "/" in pool_group:
                raise ConfigError(f"mqtt.pool_group {pool_group!r} must be one topic level")
        return cls(prefix=prefix, site=site, pool_group=pool_group)

    # Topics this node publishes to.
    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def events(self) -> str:
        """The governor's decisions (QoS 1, not retained)."""
        return f"{self.prefix}/events"

    @property
    def info(self) -> str:
        return f"{self.prefix}/info"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}/telemetry"

    def infer(self, app: str) -> str:
        return f"{self.prefix}/models/{app}/infer"

    def chat(self, app: str) -> str:
        return f"{self.prefix}/models/{app}/chat"

    def embed(self, app: str) -> str:
        return f"{self.prefix}/models/{app}/embed"

    def result(self, app: str) -> str:
        return f"{self.prefix}/models/{app}/result"

    def cmd(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}"

    def knowledge_search(self, pack: str) -> str:
        return f"{self.prefix}/knowledge/{pack}/search"

    def knowledge_result(self, pack: str) -> str:
        return f"{self.prefix}/knowledge/{pack}/result"

    @property
    def pool_root(self) -> str:
        return f"headframe/{self.site}/pool"

    def pool_infer(self, app: str) -> str:
        """The topic a requester publishes to for any member of the pool."""
        return f"{self.pool_root}/{app}/infer"

    def subscriptions(self, *, commands: bool, knowledge: bool = False) -> list[str]:
        """Topic filters to subscribe to on every connect."""
        subs = [f"{self.prefix}/models/+/{kind}" for kind in MODEL_KINDS]
        if knowledge:
            subs.append(f"{self.prefix}/knowledge/+/search")
        if commands:
            subs.append(f"{self.prefix}/cmd/+")
        if self.pool_group:
            subs += [f"$share/{self.pool_group}/{self.pool_root}/+/{k}" for k in MODEL_KINDS]
        return subs

    def parse(self, topic: str) -> Route | None:
        """The route for an incoming topic, or None when it is not one of ours."""
        own = self.prefix + "/"
        if topic.startswith(own):
            parts = topic[len(own) :].split("/")
            if len(parts) == 3 and parts[0] == "models" and parts[2] in MODEL_KINDS:
                return Route(kind=parts[2], name=parts[1]) if parts[1] else None  # type: ignore[arg-type]
            if len(parts) == 2 and parts[0] == "cmd" and parts[1]:
                return Route(kind="cmd", name=parts[1])
            if len(parts) == 3 and parts[0] == "knowledge" and parts[1] and parts[2] == "search":
                return Route(kind="knowledge", name=parts[1])
            return None
        pool = self.pool_root + "/"
        if self.pool_group and topic.startswith(pool):
            parts = topic[len(pool) :].split("/")
            if len(parts) == 2 and parts[0] and parts[1] in MODEL_KINDS:
                return Route(kind=parts[1], name=parts[0], pooled=True)  # type: ignore[arg-type]
        return None
