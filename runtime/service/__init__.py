"""The one inference service every transport calls, and what it is built from.

Owns: ``InferenceService`` (``inference``), model slots (``slot``), bounded workers and
micro-batching (``worker``), the threads that run blocking calls for the event loop
(``loop_threads``), request statistics (``stats``), load shedding (``load_shed``) and the
swap lock (``swap_lock``).
May import: the foundation, config, catalog, backends (the protocol), images. Never knows
HTTP or MQTT.
"""

from __future__ import annotations

from runtime.service.inference import (
    UNKNOWN_APP as UNKNOWN_APP,
)
from runtime.service.inference import (
    InferenceService as InferenceService,
)
from runtime.service.slot import (
    LoadedModel as LoadedModel,
)
from runtime.service.slot import (
    Loader as Loader,
)
from runtime.service.slot import (
    ModelSlot as ModelSlot,
)
