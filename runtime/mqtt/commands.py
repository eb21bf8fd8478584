"""Commands on ``{prefix}/cmd/{name}``, answered like requests.

- ``reload``  {"app": name} (or no body: every app): load again as the box chooses now
  (its pins, the settings, the governor's override, else automatic) and swap, zero
  downtime; the same as Sparkplug's ``Node Control/Reload Models``. One asked while a
  reload of that app is queued or running joins it (the change path's rule).
- ``select``  {"app": name, "variant": id | "auto"}: pin a variant (kept by the box across
  restarts, as over HTTP), or let selection choose.

Both go through the change path (runtime.service.changes), never to the service.
- ``status``  {}: the status document plus the bridge and service figures.
- ``update-now`` {...}: handed to a hook the fleet agent registers (``register``).

An MQTT message carries no sender identity the box can trust, so who may publish to
``cmd/+`` is the broker's ACL (docs/mqtt.md) and what the box obeys is a switch per
command (``mqtt.commands``: ``status`` on, ``reload``, ``select`` and ``update-now`` off
unless a site turns them on). A switched-off command is answered ``forbidden`` naming its
switch. ``mqtt.commands_enabled = false`` does not even subscribe to ``cmd/+``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from runtime.errors import HeadframeError, InvalidInput, ModelNotFound
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.config import MqttCommands
    from runtime.mqtt.jobs import Job
    from runtime.mqtt.ports import Changes, Limits, Replier, ServiceView

log = logging.getLogger(__name__)


class CommandForbidden(HeadframeError):
    """A command this box is configured not to obey."""

    code = "forbidden"


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class Commands:
    """The command table; ``register`` adds one (the fleet agent's ``update-now``).
    ``switches``: which commands this box obeys; ``status()``: the status document (with
    the bridge's and the service's figures) the ``status`` command answers."""

    def __init__(
        self,
        service: ServiceView,
        replier: Replier,
        *,
        changes: Changes,
        switches: MqttCommands,
        limits: Limits,
        status: Callable[[], dict[str, Any]],
        counters: Counter[str],
    ) -> None:
        self._service = service
        self._replier = replier
        self._changes = changes
        self._switches = switches
        self._limits = limits
        self._status_doc = status
        self._counters = counters
        self._handlers: dict[str, Handler] = {
            "reload": self._reload,
            "select": self._select,
            "status": self._status,
        }
        self._refused: set[str] = set()

    def register(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def handle(self, job: Job) -> None:
        self._counters["commands"] += 1
        name = job.route.name
        try:
            handler = self._handlers.get(name)
            if handler is None:
                if name == "update-now":
                    raise ModelNotFound("update-now: no fleet agent runs on this box")
                raise ModelNotFound(f"unknown command {name!r}; known: {', '.join(self.names())}")
            switches = self._switches
            if not switches.enabled(name):
                if name not in self._refused:  # once per command: senders may repeat
                    self._refused.add(name)
                    log.warning(
                        "mqtt: refused command %s: %s is false (the broker's ACL let it through)",
                        name,
                        switches.setting_for(name),
                    )
                raise CommandForbidden(
                    f"command {name!r} is switched off on this box "
                    f"({switches.setting_for(name)} = false)"
                )
            body: dict[str, Any] = {}
            if job.payload.strip():
                body = codec.parse_json_object(
                    job.payload,
                    max_bytes=self._limits.max_bytes,
                    max_depth=self._limits.max_depth,
                )
            log.info("mqtt: command %s %s", name, orjson.dumps(body).decode()[:200])
            result = await handler(body)
            reply = codec.ok_body(result)
        except HeadframeError as e:
            self._replier.rejected(job, e, count=False)  # counted as commands
            reply = codec.error_from(e)
        except Exception as e:
            log.exception("mqtt: command %s failed", name)
            reply = codec.error_from(e)
        self._replier.finish(job, reply)

    def _apps(self, body: dict[str, Any]) -> list[str]:
        app = body.get("app")
        if app is None:
            return sorted(s.app for s in self._service.slots())
        if not isinstance(app, str):
            raise InvalidInput("'app' must be a string")
        return [app]

    async def _reload(self, body: dict[str, Any]) -> Any:
        apps = self._apps(body)
        for app in apps:
            self._service.slot(app)  # not_found or not_ready before any loading
        slots = await self._changes.reload(apps, "mqtt")
        return {"reloaded": [{"app": s.app, "variant": s.variant.id} for s in slots]}

    async def _select(self, body: dict[str, Any]) -> Any:
        app = body.get("app")
        variant = body.get("variant")
        if not isinstance(app, str) or not isinstance(variant, str):
            raise InvalidInput('select needs {"app": name, "variant": id or "auto"}')
        pin = None if variant == "auto" else variant
        slot = await self._changes.pin(app, pin, "mqtt")
        return {"app": app, "variant": slot.variant.id, "pin": pin}

    async def _status(self, body: dict[str, Any]) -> Any:
        return self._status_doc()
