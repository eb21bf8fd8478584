"""The one back-off rule for anything that retries over a network (MQTT reconnects, TUF
metadata and target downloads).

Capped exponential growth with jitter, so a fleet of boxes that lost the same broker or
repository does not come back in lock step. "full" jitter draws from [0, d] (the fleet's
HTTP retries: spreads best); "equal" draws from [d/2, d] (MQTT reconnects: never retries
at once after a refusal).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Literal

Jitter = Literal["full", "equal"]
_MAX_DOUBLINGS = 64  # 2**64 times any sane base is past any cap; keeps the float finite


def backoff_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    *,
    jitter: Jitter = "full",
    rng: random.Random | None = None,
) -> float:
    """The delay before retry number ``attempt`` (0 for the first): d = min(cap_s,
    base_s * 2**attempt), then jittered as ``jitter`` says."""
    d = min(cap_s, base_s * 2 ** min(max(attempt, 0), _MAX_DOUBLINGS))
    u = (rng or random).random()
    return u * d if jitter == "full" else d / 2 + u * d / 2


def backoff_delays(
    min_s: float, max_s: float, *, jitter: Jitter = "equal", rng: random.Random | None = None
) -> Iterator[float]:
    """``backoff_delay`` for attempts 0, 1, 2, ... without end (``next()`` per retry)."""
    for attempt in itertools.count():
        yield backoff_delay(attempt, min_s, max_s, jitter=jitter, rng=rng)
