"""Loading a variant on this box: the fallback chain, measuring candidates, golden runs.

Owns: ``VariantLoader`` (``loader``: the (backend, device) fallback chain), the
``Calibrator`` and its cache (``calibrator``: candidates measured on this box), and
running a golden set through a loaded backend (``golden_run``), and the trial load at
import (``import_check``: what `models add` passes the catalog). Runs on worker threads
or in the CLI, never on the event loop.
May import: the foundation, config, catalog, profiles, backends, selection, box.
"""

from __future__ import annotations
