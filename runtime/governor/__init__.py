"""The governor: resource pressure -> a smaller variant through the hot swap, and back up.

One job a module: settings.py (``[governor]``), signals.py (reading the host's files and
the service's load), policy.py (pure decisions, time passed in), ladder.py (which variant
is one rung down or up), controller.py (the sampling thread and the acting on the loop),
wiring.py (the daemon's one call). Nothing here is imported at package import: config.py
imports settings.py alone.
"""
