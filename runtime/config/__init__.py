"""Settings: the TOML file and ``HEADFRAME_*`` environment, every table bounded and strict.

Owns: ``Settings`` and its tables (API, paths, applications, calibration, fleet, MQTT,
Sparkplug, streams, governor, embeddings), loading and checking a settings file, the
systemd unit's directories and credentials, and the generated configuration reference.
May import: the foundation modules only. Never reads hardware or opens sockets.
"""

from __future__ import annotations

from runtime.config.settings import (
    ENV_PREFIX as ENV_PREFIX,
)
from runtime.config.settings import (
    ApiSettings as ApiSettings,
)
from runtime.config.settings import (
    ApplicationSettings as ApplicationSettings,
)
from runtime.config.settings import (
    CalibrationSettings as CalibrationSettings,
)
from runtime.config.settings import (
    EmbeddingSettings as EmbeddingSettings,
)
from runtime.config.settings import (
    FleetSettings as FleetSettings,
)
from runtime.config.settings import (
    GovernorSettings as GovernorSettings,
)
from runtime.config.settings import (
    MqttBuffer as MqttBuffer,
)
from runtime.config.settings import (
    MqttCommands as MqttCommands,
)
from runtime.config.settings import (
    MqttSettings as MqttSettings,
)
from runtime.config.settings import (
    MqttTls as MqttTls,
)
from runtime.config.settings import (
    PathsSettings as PathsSettings,
)
from runtime.config.settings import (
    Settings as Settings,
)
from runtime.config.settings import (
    SparkplugSettings as SparkplugSettings,
)
from runtime.config.settings import (
    StreamAlert as StreamAlert,
)
from runtime.config.settings import (
    StreamSettings as StreamSettings,
)
from runtime.config.settings import (
    check_config_file as check_config_file,
)
from runtime.config.settings import (
    check_topic_name as check_topic_name,
)
from runtime.config.settings import (
    default_config_file as default_config_file,
)
from runtime.config.settings import (
    describe_validation_error as describe_validation_error,
)
from runtime.config.settings import (
    load_settings as load_settings,
)
from runtime.config.settings import (
    read_config_file as read_config_file,
)
from runtime.config.settings import (
    sparkplug_link_problem as sparkplug_link_problem,
)
