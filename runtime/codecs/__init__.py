"""Wire codecs shared by every transport (HTTP, MQTT): bytes in, numpy or text out."""
