"""Settings: a TOML file plus HEADFRAME_* environment variables.

Precedence, highest first: explicit overrides (command-line flags), environment
(``HEADFRAME_API__PORT=9000``; ``__`` separates sections), the TOML file, defaults.
Every field is titled, bounded and documented; unknown keys are an error that names
the key and the file. This module reads no hardware and opens no sockets.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from runtime import systemd_env
from runtime.errors import ConfigError
from runtime.governor.settings import GovernorSettings

ENV_PREFIX = "HEADFRAME_"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_config_file() -> Path:
    # Under the packaged unit systemd names the directories (runtime/systemd_env.py).
    if (configured := systemd_env.configuration_directory()) is not None:
        return configured / "headframe.toml"
    if _is_root():
        return Path("/etc/headframe/headframe.toml")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "headframe" / "headframe.toml"


def default_state_dir() -> Path:
    if (state := systemd_env.state_directory()) is not None:
        return state
    if _is_root():
        return Path("/var/lib/headframe")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "headframe"


def default_cache_dir() -> Path:
    if (cache := systemd_env.cache_directory()) is not None:
        return cache
    if _is_root():
        return Path("/var/cache/headframe")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "headframe"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


Objective = Literal["smallest", "fastest", "balanced"]


class CalibrationSettings(_Section):
    """Measuring candidates on this box before the first load (runtime.calibrate)."""

    enabled: bool = Field(default=True, title="Measure candidates before choosing")
    tensor_budget_s: float = Field(
        default=5.0, gt=0, le=3600, title="Time budget per tensor application, seconds"
    )
    text_budget_s: float = Field(
        default=60.0, gt=0, le=3600, title="Time budget per text application, seconds"
    )
    timed_runs: int = Field(default=50, ge=5, le=100_000, title="Timed runs per candidate")


class PathsSettings(_Section):
    state_dir: Path = Field(
        default_factory=default_state_dir,
        title="State directory (store and state)",
        description="default /var/lib/headframe as root, ~/.local/share/headframe as a user "
        "($XDG_DATA_HOME), $STATE_DIRECTORY under the systemd unit",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        title="Cache directory (compiled models)",
        description="default /var/cache/headframe as root, ~/.cache/headframe as a user "
        "($XDG_CACHE_HOME), $CACHE_DIRECTORY under the systemd unit",
    )
    store_dir: Path | None = Field(
        default=None, title="Model store", description="default: <state_dir>/store"
    )
    profiles_dir: Path | None = Field(
        default=None,
        title="Device profiles directory",
        description="default: the installed device_profiles/",
    )
    store_watch_s: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        title="Store watch period (0: off)",
        description="how often the daemon looks for packages added to or removed from the "
        "store (models add, a deleted directory, a rollback) and serves them without SIGHUP",
    )

    @property
    def store(self) -> Path:
        return self.store_dir or self.state_dir / "store"


class ApplicationSettings(_Section):
    """Site policy for one application."""

    name: str = Field(title="Application name", pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    variant: str | None = Field(default=None, title="Pinned variant id (None: auto)")
    accuracy_floor_bp: int | None = Field(
        default=None, ge=0, le=10_000, title="Site accuracy floor, basis points (raises only)"
    )
    queue_size: int = Field(default=64, ge=1, le=100_000, title="Bounded request queue")
    max_batch: int = Field(default=1, ge=1, le=1024, title="Dynamic batching: most requests")
    batch_wait_ms: float = Field(default=0.0, ge=0, le=100, title="Dynamic batching: wait")
    objective: Objective | None = Field(
        default=None, title="Objective for this application (None: the box's objective)"
    )


class ApiSettings(_Section):
    host: str = Field(default="127.0.0.1", title="Bind address")
    port: int = Field(default=8080, ge=0, le=65535, title="Port (0: any free port)")
    tokens: list[SecretStr] = Field(
        default_factory=list, title="API bearer tokens", description="required off loopback"
    )
    tokens_file: Path | None = Field(default=None, title="File with one token per line")
    tls_cert_file: Path | None = Field(default=None, title="TLS certificate (PEM)")
    tls_key_file: Path | None = Field(default=None, title="TLS private key (PEM)")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=2**31, title="Body limit")
    request_timeout_s: float = Field(default=30.0, gt=0, le=3600, title="Request timeout")
    trusted_hosts: list[str] | None = Field(
        default=None,
        title="Host names the API answers to",
        description="beside the loopback names; default: loopback names only when bound "
        'to loopback, any name otherwise; "*.example.com" matches a domain, "*" any name',
    )
    readiness: Literal["not_failed", "all", "any"] = Field(
        default="not_failed",
        title="When the node is ready (/v2/health/ready)",
        description="not_failed: every application that has not failed is loaded (and one "
        "is, if any failed); all: every application is loaded; any: one is",
    )

    @field_validator("trusted_hosts")
    @classmethod
    def _host_names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if not 0 < len(name) <= 255 or any(c.isspace() or c in "/@" for c in name):
                raise ValueError(f"{name!r} is not a host name")
        return v


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

    @field_validator("group_id", "edge_node_id", "primary_host_id")
    @classmethod
    def _check_ids(cls, value: str | None) -> str | None:
        return None if value is None else _check_sparkplug_id(value)


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
        default=10.0, gt=0, le=86400, title="No sample for this long: the stream is stalled"
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


class FleetSettings(_Section):
    url: str | None = Field(default=None, title="Repository base URL (metadata/ and targets/)")
    trusted_root: Path | None = Field(default=None, title="Root metadata installed with the box")
    poll_interval_s: float = Field(default=900.0, ge=5, le=7 * 86400, title="Poll period")
    channel: str = Field(default="stable", pattern=r"^[a-z0-9-]{1,32}$", title="Channel")
    node_id: str | None = Field(default=None, title="Node id for staged rollout (default: host)")
    bandwidth_limit_bytes_s: int | None = Field(default=None, ge=1024, title="Download cap")
    maintenance_window: str | None = Field(
        default=None, pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$", title="HH:MM-HH:MM local time"
    )
    min_versions: dict[str, str] = Field(default_factory=dict, title="Per-app minimum version")
    candidates: int = Field(
        default=2, ge=1, le=16, title="Candidates downloaded per update (best by the static rule)"
    )
    candidate_bytes_factor: float = Field(
        default=1.5,
        ge=1.0,
        le=100.0,
        title="Also download every candidate within this factor of the smallest's bytes",
        description="the trial measures the downloaded candidates on this box and keeps the "
        "winner under the objective; the rest are dropped",
    )


class Settings(BaseSettings):
    """Everything the daemon is told. See docs/configuration.md for every key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    paths: PathsSettings = Field(default_factory=PathsSettings, title="Directories")
    profile: str | None = Field(default=None, title="Force a device profile by name")
    memory_bytes: int | None = Field(default=None, ge=1, title="Override the memory budget base")
    objective: Objective = Field(
        default="balanced",
        title="How measured variants are ranked",
        description="smallest: the smallest that qualifies; fastest: the lowest measured p50; "
        "balanced: the smallest whose p50 is within balanced_factor of the fastest",
    )
    balanced_factor: float = Field(
        default=1.25, ge=1.0, le=100.0, title="balanced: p50 within this factor of the fastest"
    )
    calibration: CalibrationSettings = Field(
        default_factory=CalibrationSettings, title="Measuring candidates on this box"
    )
    applications: list[ApplicationSettings] = Field(
        default_factory=list, title="Applications to serve (empty: every one in the store)"
    )
    demo: bool = Field(default=True, title="Build the demo catalog into an empty store")
    api: ApiSettings = Field(default_factory=ApiSettings, title="Local HTTP API")
    mqtt: MqttSettings | None = Field(default=None, title="MQTT bridge (None: off)")
    fleet: FleetSettings | None = Field(default=None, title="Model updates (None: off)")
    streams: list[StreamSettings] = Field(
        default_factory=list, title="Sensor-stream bindings (empty: none)"
    )
    sparkplug: SparkplugSettings = Field(
        default_factory=SparkplugSettings, title="Sparkplug B edge node (off unless enabled)"
    )
    governor: GovernorSettings = Field(
        default_factory=GovernorSettings, title="Step variants down under pressure, back up after"
    )
    log_format: Literal["auto", "text", "json"] = Field(default="auto", title="Log format")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", title="Log level"
    )

    @model_validator(mode="after")
    def _check_streams(self) -> Settings:
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise ValueError(f"streams: names must be unique, got {names}")
        if self.streams and self.mqtt is None:
            raise ValueError("streams need an [mqtt] section (the broker they read from)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return (env_settings, init_settings)


class _ResolvedSettings(Settings):
    """Validates already-merged values (file + env + overrides) without re-reading the env."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: configuration file not found") from e
    except PermissionError as e:
        raise ConfigError(f"{path}: cannot read configuration file: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def _closest_key(location: tuple[str | int, ...]) -> str | None:
    """The valid key nearest to the unknown one at ``location``, e.g. ('api', 'prot')."""
    model: type[BaseModel] = Settings
    for part in location[:-1]:
        if isinstance(part, int):  # [[applications]] entries
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        for arg in list(candidates):
            candidates += typing.get_args(arg)  # list[X] inside X | None
        models = (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
        sub = next(models, None)
        if sub is None:
            return None
        model = sub
    found = difflib.get_close_matches(str(location[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return found[0] if found else None


def describe_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            near = _closest_key(tuple(e["loc"]))
            dotted = ".".join([*(str(p) for p in e["loc"][:-1]), near]) if near else ""
            hint = f" (did you mean {dotted!r}?)" if near else ""
            lines.append(f"{source}: unknown key {loc!r}{hint}")
        else:
            lines.append(f"{source}: {loc}: {e['msg']}")
    return "\n".join(lines)


def load_settings(
    config_file: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    use_default_file: bool = True,
) -> Settings:
    """Settings from ``config_file`` (or the default file if it exists) plus the environment.

    Raises ConfigError with a message naming the file and every bad key.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if config_file is not None:
        data = read_config_file(config_file)
        source = str(config_file)
    elif use_default_file and default_config_file().is_file():
        config_file = default_config_file()
        data = read_config_file(config_file)
        source = str(config_file)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, f"{source} (or {ENV_PREFIX}* env)")) from e
    if overrides:
        merged = settings.model_dump()
        for dotted, value in overrides.items():
            node = merged
            *parents, leaf = dotted.split(".")
            for p in parents:
                if node.get(p) is None:
                    node[p] = {}
                node = node[p]
            node[leaf] = value
        try:
            settings = _ResolvedSettings(**merged)
        except ValidationError as e:
            raise ConfigError(describe_validation_error(e, "command line")) from e
    # Secrets from systemd's LoadCredential= when the unit provides them.
    return systemd_env.apply_credentials(settings)


def check_config_file(path: Path) -> Settings:
    """Validate one file on its own (defaults + file, no environment). Raises ConfigError."""
    data = read_config_file(path)
    try:
        return _ResolvedSettings(**data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, str(path))) from e
