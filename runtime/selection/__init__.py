"""Which variant to run: pure decisions with a reason for every candidate.

Owns: the static rules and the choice (``decide``: what a profile's targets can run,
the memory budget, the floor, pins), ranking by measurement (``ranking``), and the
``Measurement`` record (``measurement``).
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
from runtime.selection.decide import (
    select as select,
)
