"""headframe: the edge AI runtime for industrial sites.

The package is imported as ``runtime``; the composition root is :mod:`runtime.daemon`
and the command line is :mod:`runtime.cli`. See docs/architecture.md for the map.
"""

__version__ = "0.1.0"
