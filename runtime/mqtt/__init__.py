"""MQTT v5 transport: the bridge (bridge.py), topic names (topics.py), the one MQTT session
class (connection.py, with client_setup.py and diagnostics.py), which runtime.sparkplug and
runtime.streams use too, the store-and-forward buffer (buffer.py, outbox.py), commands,
telemetry and the payload codec glue. See docs/mqtt.md."""
