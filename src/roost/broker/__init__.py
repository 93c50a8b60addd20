"""Roost's MQTT broker. The documented imports::

    from roost.broker import Broker, BrokerConfig, ListenerConfig, ConfigError

See docs/architecture.md for how the broker is put together.
"""

from roost.broker.config import BrokerConfig, ConfigError, ListenerConfig, load_config
from roost.broker.server import Broker

__all__ = ["Broker", "BrokerConfig", "ConfigError", "ListenerConfig", "load_config"]
