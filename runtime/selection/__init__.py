"""Which variant to run: pure decisions with a reason for every candidate.

Owns: the static rules and the decision's records (``decide``: what a profile's targets
can run), the decision in two steps, static screen then rank by measurement, so the
static rules run once per decision (``screen``: the memory budget, the floor, pins),
ranking by measurement (``ranking``), and the ``Measurement`` record (``measurement``).
May import: the foundation (the backend table among it), catalog, profiles, hardware (the
report), backends (``registry``: a target's device rule, from its backend's own file).
Does no I/O.
"""

from __future__ import annotations

from runtime.selection.decide import (
    Choice as Choice,
)
from runtime.selection.decide import (
    Policy as Policy,
)
from runtime.selection.decide import (
    Rejection as Rejection,
)
from runtime.selection.decide import (
    Resources as Resources,
)
from runtime.selection.decide import (
    Selection as Selection,
)
from runtime.selection.decide import (
    resources_for as resources_for,
)
from runtime.selection.decide import (
    runtimes_selection_reads as runtimes_selection_reads,
)
from runtime.selection.screen import (
    Screened as Screened,
)
from runtime.selection.screen import (
    rank as rank,
)
from runtime.selection.screen import (
    screen as screen,
)
from runtime.selection.screen import (
    select as select,
)
