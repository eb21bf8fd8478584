"""Sparkplug B 3.0 edge node: payloads (payload.py), aliases and report by exception
(tracker.py), the MQTT session with births, data and commands (node.py), and the daemon's
wiring (wiring.py)."""
