"""MQTT v5 transport: the bridge (bridge.py), topic names (topics.py), the connection
(connection.py), the store-and-forward buffer (buffer.py, outbox.py), commands,
telemetry and the payload codec glue. See docs/mqtt.md."""
