"""Sensor-stream bindings: samples read from the topics a site already has (samples.py),
windows (window.py), a binding that runs the application's model on each window and
publishes results and alerts (binding.py), and their session of runtime.mqtt.connection
(runner.py)."""
