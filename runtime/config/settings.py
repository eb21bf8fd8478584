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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from runtime.config import systemd_env
from runtime.config.base import Section as _Section
from runtime.config.embeddings import EmbeddingSettings as EmbeddingSettings
from runtime.config.governor import GovernorSettings
from runtime.config.mqtt import MqttBuffer as MqttBuffer
from runtime.config.mqtt import MqttCommands as MqttCommands
from runtime.config.mqtt import MqttSettings as MqttSettings
from runtime.config.mqtt import MqttTls as MqttTls
from runtime.config.mqtt import SparkplugSettings as SparkplugSettings
from runtime.config.mqtt import StreamAlert as StreamAlert
from runtime.config.mqtt import StreamSettings as StreamSettings
from runtime.config.mqtt import check_topic_name as check_topic_name
from runtime.config.mqtt import sparkplug_link_problem as sparkplug_link_problem
from runtime.errors import ConfigError

ENV_PREFIX = "HEADFRAME_"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_config_file() -> Path:
    # Under the packaged unit systemd names the directories (runtime/config/systemd_env.py).
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


Objective = Literal["smallest", "fastest", "balanced"]


class CalibrationSettings(_Section):
    """Measuring candidates on this box before the first load (runtime.loading.calibrator)."""

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
        default_factory=list,
        title="API bearer tokens",
        description="required off loopback; each in the tokens-file syntax (scopes)",
    )
    tokens_file: Path | None = Field(
        default=None,
        title="File with one token per line",
        description="a bare line is a token with every scope; 'scopes=infer TOKEN' or "
        "'scopes=infer,admin TOKEN' limits it (admin: /admin/, infer: every other route)",
    )
    admin_token_file: Path | None = Field(
        default=None,
        title="Token the CLI sends to /admin/ (headframe models use)",
        description="a file in the tokens-file syntax; its first token with the admin scope "
        "is sent; default: the first such token in tokens and tokens_file; the daemon "
        "itself never reads it",
    )
    tls_cert_file: Path | None = Field(default=None, title="TLS certificate (PEM)")
    tls_key_file: Path | None = Field(default=None, title="TLS private key (PEM)")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=2**31, title="Body limit")
    max_text_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=2**31,
        title="Body limit of the OpenAI routes (/v1/)",
        description="their JSON is parsed on the event loop, so it is bounded tighter than "
        "pictures and binary tensors; 4 MiB holds a context of a million tokens",
    )
    request_timeout_s: float = Field(default=30.0, gt=0, le=3600, title="Request timeout")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        title="Time a client has to send a request's headers",
        description="counted from connecting, and on a kept-alive connection from the "
        "request's first byte; then the connection is closed (a slow-headers client holds "
        "nothing longer)",
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        title="Open HTTP connections at most",
        description="past it, a new connection is closed at once",
    )
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
    keep_rungs: int = Field(
        default=2,
        ge=0,
        le=8,
        title="Lighter qualifying variants kept beside the winner (for the governor)",
        description="with [governor] enabled, the fleet also downloads up to this many "
        "variants lighter (peak memory, then bytes) than the shortlist, and keeps those "
        "lighter than the measured winner that qualified here, so the governor can step "
        "down under pressure; 0, the governor off, or an operator pin: only the winner",
    )
    reembed_packs: bool = Field(
        default=False,
        title="Embed a delivered knowledge pack again when the box's embedder differs",
        description="off: such a pack is refused with the reason; on: the box embeds the "
        "pack's chunks with its own embedding application, then runs the pack's trial",
    )
    reembed_with: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
        title="The embedding application packs are embedded again with",
        description="default: the pack's own application when the box serves another "
        "version of it, else the one embedding application the box serves",
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
    embeddings: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings, title="Limits of an embeddings request (every route)"
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

    @model_validator(mode="after")
    def _check_sparkplug_link(self) -> Settings:
        problem = sparkplug_link_problem(self.sparkplug, self.mqtt)
        if problem:
            raise ValueError(problem)
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
    return apply_credentials(settings)


def check_config_file(path: Path) -> Settings:
    """Validate one file on its own (defaults + file, no environment). Raises ConfigError."""
    data = read_config_file(path)
    try:
        return _ResolvedSettings(**data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, str(path))) from e


def apply_credentials(settings: Settings, env: Mapping[str, str] | None = None) -> Settings:
    """Settings whose secret files fall back to the unit's credentials.

    An explicit ``api.tokens_file`` / ``mqtt.password_file`` wins (a relative one is looked
    up in $CREDENTIALS_DIRECTORY); when unset, a non-blank credential ``api-tokens`` /
    ``mqtt-password`` fills it. Returns ``settings`` itself when nothing changes.
    """
    if systemd_env.credentials_directory(env) is None:
        return settings
    api = settings.api
    tokens_file = systemd_env.resolve_credential(
        api.tokens_file, env
    ) or systemd_env.credential_file(systemd_env.API_TOKENS_CREDENTIAL, env)
    if tokens_file != api.tokens_file:
        api = api.model_copy(update={"tokens_file": tokens_file})
    mqtt = settings.mqtt
    if mqtt is not None:
        password_file = systemd_env.resolve_credential(
            mqtt.password_file, env
        ) or systemd_env.credential_file(systemd_env.MQTT_PASSWORD_CREDENTIAL, env)
        if password_file != mqtt.password_file:
            mqtt = mqtt.model_copy(update={"password_file": password_file})
    if api is settings.api and mqtt is settings.mqtt:
        return settings
    return settings.model_copy(update={"api": api, "mqtt": mqtt})
