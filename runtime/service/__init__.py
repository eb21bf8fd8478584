"""The one inference service every transport calls, and what it is built from.

Owns: ``InferenceService`` (``inference``: requests, each answered with who computed it,
``answer``), the table of live slots with loading, hot swap and parking (``slots``), one
slot (``slot``), bounded workers and micro-batching (``worker``), the threads that run
blocking calls for the event loop (``loop_threads``), request statistics (``stats``), load
shedding (``load_shed``) and the change path (``changes``: the one way what an application
runs changes, with one lock, one history and one undo rule; its reloads join one under
way through ``single_flight``).
May import: the foundation, config, catalog, backends (the protocol), selection, images.
Never knows HTTP or MQTT.
"""

from __future__ import annotations

from runtime.service.answer import (
    Answer as Answer,
)
from runtime.service.answer import (
    TextAnswer as TextAnswer,
)
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
