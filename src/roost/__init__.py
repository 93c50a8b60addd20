"""Roost: an MQTT 3.1, 3.1.1 and 5.0 broker, client library and command-line tools."""

__version__ = "0.1.0"

__all__ = ["__version__"]
