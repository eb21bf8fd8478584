"""Sparkplug B 3.0 edge node: payloads (payload.py), aliases and report by exception
(tracker.py), births, data and commands on a session of runtime.mqtt.connection (node.py),
and the daemon's wiring (wiring.py)."""
