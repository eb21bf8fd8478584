"""Settings of the MQTT side: the bridge (``[mqtt]``: broker, TLS, buffer, commands),
the Sparkplug B edge node (``[sparkplug]``) and the sensor-stream bindings
(``[[streams]]``). Part of ``runtime.config.Settings``; see docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from runtime.config.base import Section as _Section


class MqttTls(_Section):
    ca_file: Path | None = Field(default=None, title="CA bundle (PEM)")
    cert_file: Path | None = Field(default=None, title="Client certificate for mTLS")
    key_file: Path | None = Field(default=None, title="Client key for mTLS")


class MqttBuffer(_Section):
    path: Path | None = Field(default=None, title="SQLite buffer (default: state_dir)")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096, le=2**40, title="Buffer bound")
    max_age_s: int = Field(default=24 * 3600, ge=1, le=365 * 24 * 3600, title="Oldest kept")
    policy: Literal["drop_oldest", "reject_new"] = Field(default="drop_oldest", title="When full")
    replay_rate_per_s: float = Field(default=200.0, gt=0, le=100_000, title="Replay rate")
    sync: Literal["normal", "full"] = Field(
        default="normal",
        title="SQLite synchronous mode",
        description="normal survives a crash of the daemon; full also a power cut (slower)",
    )


def check_topic_name(value: str) -> str:
    """A name that becomes one topic level (site, node): the reason when it cannot be."""
    if any(c in value for c in "/+#"):
        raise ValueError(f"{value!r} must be one topic level, without / + or #")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        # NUL ends a C string in brokers and tools; the rest are invisible in logs.
        raise ValueError(f"{value!r} must not contain NUL or other control characters")
    if value.startswith("$"):
        raise ValueError(f"{value!r} must not start with $ (broker-reserved topics)")
    return value


class MqttCommands(_Section):
    """Which ``{prefix}/cmd/{name}`` commands the box obeys. An MQTT message carries no
    sender identity a box can trust, so the broker's ACL decides who may publish to
    ``cmd/+`` (docs/mqtt.md) and these switches what the box does about it. The ones that
    change what is served are off unless a site turns them on."""

    status: bool = Field(default=True, title="Answer cmd/status (read-only)")
    reload: bool = Field(default=False, title="Obey cmd/reload (load every model again)")
    select: bool = Field(default=False, title="Obey cmd/select (pin a variant)")
    update_now: bool = Field(default=False, title="Obey cmd/update-now (fleet sync at once)")

    def enabled(self, command: str) -> bool:
        """The one answer to "may this command run here?" (MQTT and, later, Sparkplug)."""
        return bool(getattr(self, command.replace("-", "_"), False))

    def setting_for(self, command: str) -> str:
        return f"mqtt.commands.{command.replace('-', '_')}"


class MqttSettings(_Section):
    host: str = Field(default="127.0.0.1", title="Broker host")
    port: int = Field(default=1883, ge=1, le=65535, title="Broker port")
    site: str = Field(default="site", min_length=1, max_length=64, title="Site name in topics")
    node: str = Field(default="node", min_length=1, max_length=64, title="Node name in topics")
    prefix: str = Field(default="headframe/{site}/{node}", title="Topic prefix template")
    client_id: str | None = Field(default=None, title="Client id (default: headframe-{node})")
    keepalive: int = Field(default=30, ge=5, le=3600, title="Keepalive seconds")
    session_expiry_s: int = Field(default=3600, ge=0, le=2**32 - 1, title="Session expiry")
    tls: MqttTls | None = Field(default=None, title="TLS settings (None: plain TCP)")
    username: str | None = Field(default=None, title="Username")
    password_file: Path | None = Field(default=None, title="File holding the password")
    pool_group: str | None = Field(default=None, title="Shared-subscription group for pools")
    commands_enabled: bool = Field(default=True, title="Subscribe to {prefix}/cmd/+ at all")
    commands: MqttCommands = Field(default_factory=MqttCommands, title="Per-command switches")
    reply_prefix: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        title="Only answer on Response Topics under this prefix (None: any allowed topic)",
    )
    telemetry_interval_s: float = Field(default=10.0, ge=0.5, le=86400, title="Telemetry period")
    max_payload_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, title="Largest request payload"
    )
    max_json_depth: int = Field(default=32, ge=4, le=1000, title="Nesting limit for payloads")
    queue_size: int = Field(default=64, ge=1, le=100_000, title="Requests waiting per application")
    reconnect_min_s: float = Field(default=0.1, gt=0, le=60, title="First reconnect delay")
    reconnect_max_s: float = Field(
        default=1.5, gt=0, le=3600, title="Longest reconnect delay (broker absent)"
    )
    refused_max_s: float = Field(
        default=60.0, gt=0, le=3600, title="Longest reconnect delay (broker refused us)"
    )
    buffer: MqttBuffer = Field(default_factory=MqttBuffer, title="Store-and-forward buffer")
    paho_fast_path: bool = Field(
        default=True,
        title="Use the fast path on the tested paho-mqtt 2.2 (false: paho's own code paths)",
    )

    @field_validator("site", "node")
    @classmethod
    def _check_names(cls, value: str) -> str:
        return check_topic_name(value)

    @field_validator("reply_prefix")
    @classmethod
    def _check_reply_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        if not value or any(c in value for c in "+#\x00") or value.startswith("$"):
            raise ValueError(f"{value!r} must be a topic without + # NUL or a leading $")
        return value


def _check_sparkplug_id(value: str) -> str:
    # Spec 3.0, 4.1.1: group, edge node and host ids are topic levels without + # /.
    if any(c in value for c in "+#/\x00") or value.startswith("$"):
        raise ValueError(f"{value!r} must not contain + # / NUL or start with $")
    return value


class SparkplugSettings(_Section):
    """The Sparkplug B 3.0 edge node (docs/mqtt.md, "Sparkplug B"): its own MQTT session
    (Clean Start, session expiry 0, NDEATH as the Will), one device per application."""

    enabled: bool = Field(default=False, title="Run the Sparkplug B edge node")
    group_id: str = Field(default="headframe", min_length=1, max_length=64, title="Group id")
    edge_node_id: str = Field(default="node", min_length=1, max_length=64, title="Edge node id")
    primary_host_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        title="Wait for spBv1.0/STATE/<id> online before NBIRTH (None: birth at once)",
    )
    host: str | None = Field(default=None, title="Broker host (None: [mqtt].host or 127.0.0.1)")
    port: int | None = Field(
        default=None, ge=1, le=65535, title="Broker port (None: [mqtt].port or 1883)"
    )
    username: str | None = Field(default=None, title="Username (None: [mqtt].username)")
    password_file: Path | None = Field(default=None, title="Password file (None: [mqtt]'s)")
    keepalive: int = Field(default=30, ge=5, le=3600, title="Keepalive seconds")
    scan_interval_s: float = Field(
        default=1.0, ge=0.01, le=3600, title="How often metrics are compared for NDATA/DDATA"
    )
    reconnect_max_s: float = Field(default=5.0, gt=0, le=3600, title="Longest reconnect delay")
    tls: MqttTls | None = Field(
        default=None,
        title="TLS to the broker named by host (None: plain TCP)",
        description="only with host: on [mqtt]'s broker the node uses [mqtt.tls]",
    )
    state_max_ahead_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        title="How far ahead of this box's clock a primary host's STATE timestamp may be",
        description="a STATE from further ahead is ignored (a forgery, or a host whose clock "
        "is wrong: set the clocks right, or raise this)",
    )

    @model_validator(mode="after")
    def _tls_needs_host(self) -> SparkplugSettings:
        if self.enabled and self.tls is not None and self.host is None:
            raise ValueError(
                "sparkplug.tls is for a broker of its own (sparkplug.host); on [mqtt]'s "
                "broker the node uses [mqtt.tls]"
            )
        return self

    @field_validator("group_id", "edge_node_id", "primary_host_id")
    @classmethod
    def _check_ids(cls, value: str | None) -> str | None:
        return None if value is None else _check_sparkplug_id(value)


def inherited_credentials(sparkplug: SparkplugSettings, mqtt: MqttSettings | None) -> list[str]:
    """The [mqtt] credential keys the edge node would send to its broker for want of its
    own ([sparkplug] ``username``/``password_file`` unset)."""
    if mqtt is None:
        return []
    return [
        f"mqtt.{key}"
        for key in ("username", "password_file")
        if getattr(sparkplug, key) is None and getattr(mqtt, key) is not None
    ]


def sparkplug_link_problem(sparkplug: SparkplugSettings, mqtt: MqttSettings | None) -> str | None:
    """Why the edge node must not connect as configured, or None. The one case: a broker of
    its own (``sparkplug.host``) reached in plain TCP (no ``[sparkplug.tls]``: [mqtt.tls]
    belongs to [mqtt]'s broker) would be sent [mqtt]'s credentials in clear text."""
    if not sparkplug.enabled or sparkplug.host is None or sparkplug.tls is not None:
        return None
    inherited = inherited_credentials(sparkplug, mqtt)
    if not inherited:
        return None
    return (
        f"sparkplug.host names a broker of its own ({sparkplug.host}), reached in plain TCP, "
        f"so the edge node would send it {' and '.join(inherited)} in clear text: set "
        "sparkplug.username and sparkplug.password_file for that broker, or [sparkplug.tls] "
        "(sparkplug.tls), or leave sparkplug.host unset to use [mqtt]'s broker and its TLS"
    )


class StreamAlert(_Section):
    """Publish on ``topic`` when output ``output`` (flat index) crosses ``threshold``
    upwards (state "on"), and again when it falls below ``threshold - hysteresis``
    ("off"); only state changes are published (retained)."""

    topic: str = Field(min_length=1, max_length=1024, title="Alert topic")
    output: int = Field(default=0, ge=0, title="Flat index into the first output")
    threshold: float = Field(title="Value above which the alert is on")
    hysteresis: float = Field(default=0.0, ge=0, title="How far below the threshold it goes off")

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        return _check_publish_topic(value)


def _check_publish_topic(value: str) -> str:
    if any(c in value for c in "+#\x00") or value.startswith("$"):
        raise ValueError(f"{value!r} must be a topic without + # NUL or a leading $")
    return value


class StreamSettings(_Section):
    """One sensor-stream binding (docs/mqtt.md, "Sensor streams"): samples from topics ->
    a window -> the application's model -> a result topic (and an alert topic)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", title="Name")
    app: str = Field(min_length=1, max_length=128, title="Application that runs the windows")
    subscribe: list[str] = Field(min_length=1, max_length=64, title="Topic filter(s)")
    value: Literal["number", "json", "sparkplug"] = Field(
        default="number", title="How a sample is read: whole payload, JSON pointer, metric"
    )
    pointer: str | None = Field(default=None, title="JSON pointer (value = json), e.g. /vib/x")
    metric: str | None = Field(default=None, title="Sparkplug metric name (value = sparkplug)")
    timestamp_pointer: str | None = Field(
        default=None,
        title="JSON pointer to the sample's time (Unix s or ms; value = json): older = late",
    )
    fields: list[str] = Field(
        default_factory=list,
        max_length=64,
        title="Topics whose values make one sample vector, in this order (empty: one value)",
    )
    input: str | None = Field(default=None, title="Model input to fill (None: the first)")
    size: int = Field(ge=1, le=1_000_000, title="Samples per window")
    hop: int | None = Field(default=None, ge=1, le=1_000_000, title="Samples between windows")
    window_s: float | None = Field(
        default=None, gt=0, le=86400, title="Time window: every window_s, the last size samples"
    )
    publish: str = Field(min_length=1, max_length=1024, title="Result topic")
    qos: int = Field(default=0, ge=0, le=1, title="QoS of results and alerts")
    retain: bool = Field(default=False, title="Retain results")
    alert: StreamAlert | None = Field(default=None, title="Alert rule (None: no alerts)")
    stall_after_s: float = Field(
        default=10.0,
        gt=0,
        le=86400,
        title="No sample accepted for this long: the stream is stalled",
    )
    max_ahead_s: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        title="How far a sample's own time (timestamp_pointer) may be ahead of its arrival",
        description="a sample from further ahead is counted as future and left out: taken, "
        "it would make every later sample late",
    )

    @field_validator("publish")
    @classmethod
    def _check_publish(cls, value: str) -> str:
        return _check_publish_topic(value)

    @model_validator(mode="after")
    def _check_reader(self) -> StreamSettings:
        if self.value == "json" and not (self.pointer or "").startswith("/"):
            raise ValueError("value = 'json' needs pointer = '/path/to/value'")
        if self.timestamp_pointer is not None and (
            self.value != "json" or not self.timestamp_pointer.startswith("/")
        ):
            raise ValueError("timestamp_pointer = '/path' needs value = 'json'")
        if self.value == "sparkplug" and not self.metric:
            raise ValueError("value = 'sparkplug' needs metric = 'Metric Name'")
        if self.hop is not None and self.window_s is not None:
            raise ValueError("a window has hop (samples) or window_s (time), not both")
        return self
